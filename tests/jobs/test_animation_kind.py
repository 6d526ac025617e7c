"""The animation kind in segments: the plan step prepares once, and a segment animates from that
prepared state without preparing again, into frames equal to the whole run's."""

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import numpy as np
import pytest

from animatica.jobs import animation, kinds
from animatica.jobs.kinds import Execution
from animatica.jobs.segment_file import iter_segment
from animatica.settings import Settings

pytestmark = pytest.mark.slow


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_a_segment_animates_from_the_prepared_state_without_preparing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from animatica import pipeline
    from animatica.demo import write_demo_driving, write_demo_inputs

    settings = Settings(home=tmp_path / "home", torch_threads=1, segment_seconds=1.0, log_level="WARNING")
    (tmp_path / "inputs").mkdir()
    # 2 s of driving clip: two 1 s segments, the second one starting mid-video
    write_demo_driving(tmp_path / "inputs" / "driving.mp4", seconds=2)
    source, driving = write_demo_inputs(tmp_path / "inputs")
    inputs = {"source": source, "driving": driving}
    options = {"relative": True, "find_best_frame": True}
    segmented = kinds.get(animation.NAME).segmented
    assert segmented is not None

    work = tmp_path / "plan"
    work.mkdir()
    plan = segmented.plan(
        settings,
        Execution(animation.NAME, inputs, work, "landmarks", options),
        lambda _p: None,
        lambda: False,
    )
    assert plan.prepared and plan.best_frame is not None and len(plan.parts) > 1
    blob = tmp_path / "prepared.bin"
    blob.write_bytes(plan.prepared)

    whole = tmp_path / "whole.mp4"
    animation.run(
        animation.request_fields(settings, animation.execution(source, driving, whole, "landmarks", options)),
        lambda _p: None,
        lambda: False,
    )

    def prepared_again(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a segment redid the once-per-job work")

    monkeypatch.setattr(pipeline, "_prepare", prepared_again)
    part = plan.parts[1]
    packed = tmp_path / "segment" / "segment.mkv"
    packed.parent.mkdir()
    count = segmented.segment(
        settings,
        Execution(animation.NAME, inputs, packed, "landmarks", options),
        SimpleNamespace(frame_rate=plan.frame_rate, best_frame=plan.best_frame),
        part,
        blob,
        lambda _p: None,
        lambda: False,
    )
    assert count == part.frames
    got = list(iter_segment(packed))
    assert len(got) == count
    # Both went through H.264 once, but in different encodes (the segment's starts at its seam), and
    # the landmarks engine's segment tracks only its warm-up frames: close frames, not equal ones.
    expected = _frames(whole)[part.start : part.stop]
    assert [frame.shape for frame in got] == [frame.shape for frame in expected]
    assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(got, expected, strict=True)) < 8
