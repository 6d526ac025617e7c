"""One animation outside accounts and the job queue, for the ML-engine endpoint's integrations.

Its inputs get the same content checks as user uploads, at the largest plan's limits, and one
animation runs at a time, so integrations cannot starve the job queue of the machine.
"""

import shutil
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO

from animatica.jobs import animation
from animatica.jobs.options import JobOptions
from animatica.service.context import ServiceContext
from animatica.service.errors import Forbidden, NotFound
from animatica.service.payments import constant_time_equal
from animatica.service.plans import PLANS
from animatica.service.submit import runnable
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.checks import Upload
from animatica.service.uploads.receive import receive
from animatica.settings import Settings

_one_at_a_time = threading.Lock()


def require_key(settings: Settings, given: str | None) -> None:
    """404 while the endpoint is off (no key configured), 403 for a missing or wrong key."""
    if not settings.ml_engine_key:
        raise NotFound("The ML-engine endpoint is not enabled on this server.")
    if given is None or not constant_time_equal(given, settings.ml_engine_key):
        raise Forbidden("The X-ML-Engine-Key header is missing or wrong.")


def animate(ctx: ServiceContext, source: BinaryIO, driving: BinaryIO, options: JobOptions) -> Path:
    """Check both inputs and animate them now; returns the video, alone in a folder of its own.

    The caller removes that folder (`remove`) once the video is sent; on any error it is already gone.
    """
    options = runnable(ctx.settings, options)
    largest = max(PLANS.values(), key=lambda plan: plan.rank)
    folder = Path(tempfile.mkdtemp(prefix="animatica-engine-"))
    try:
        limit = ctx.settings.max_upload_bytes
        receive(source, folder / "source.bin", limit, "The source image")
        receive(driving, folder / "driving.bin", limit, "The driving video")
        image, video = upload_checks.check(
            Upload(
                folder / "source.bin",
                "The source image",
                folder / "source.png",
                folder / "driving.bin",
                "The driving video",
                largest,
            ),
            ctx.settings,
        )
        options = options.but(max_frames=video.max_frames, frame_rate=video.fps)
        output = folder / "result.mp4"
        with _one_at_a_time:
            ctx.runner.executor(
                animation.execution(image.path, video.path, output, options.engine, options.to_row()),
                lambda _progress: None,
                lambda: False,
            )
    except BaseException:
        remove(folder)
        raise
    return output


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
