"""Work for animation children in tests, in place of the pipeline.

A spawned child imports its work function by name, so these live in a module of their own. What a
job does is read from the file named by ``CHILD_WORK_MODE`` at the start of each job, so a test can
make one job hang and let the next one finish, in the same long-lived child:

* ``hang``: report progress once, then never again, deaf to cancel: a stuck animation;
* ``allocate``: ask for more memory than the child's address-space cap;
* ``fail-with-paths``: fail with an input error that names server paths;
* ``finish``: write a small real video and return like the pipeline.
"""

import os
import resource
import time
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError, MediaError
from animatica.pipeline import AnimationResult, Progress

MODE_VARIABLE = "CHILD_WORK_MODE"


def set_mode(path: Path, mode: str) -> None:
    path.write_text(mode)


def run(fields: dict[str, Any], on_progress: Any, should_cancel: Any) -> Any:
    mode = Path(os.environ[MODE_VARIABLE]).read_text().strip()
    on_progress(Progress("load", 0, 8, 0.0, None))
    if mode == "hang":
        while True:
            time.sleep(1.0)
    if mode == "allocate":
        cap, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if cap == resource.RLIM_INFINITY:
            raise AnimaticaError("this child has no address-space cap")
        block = bytearray(cap)  # the cap itself cannot fit beside what the child already holds
        raise AnimaticaError(f"{len(block)} bytes were allocated beyond the cap")
    if mode == "fail-with-paths":
        raise MediaError(f"{fields['driving']} cannot be decoded; see {Path.home()}/.cache/decoder.log.")
    if mode == "finish":
        output = Path(fields["output"])
        _write_video(output, frames=6)
        on_progress(Progress("done", 6, 6, 10.0, 0.0))
        return AnimationResult(output, 6, 8.0, 0.1, False)
    raise AssertionError(f"unknown mode {mode!r}")


def _write_video(path: Path, frames: int) -> None:
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            pixels = np.full((64, 64, 3), index * 30, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
