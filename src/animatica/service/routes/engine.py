"""The seed's ML-engine endpoint, for direct integrations: ``POST /api/fomm/video``.

It bypasses accounts and credits, so it is off unless ``ANIMATICA_ML_ENGINE_KEY`` is set, and
the ``X-ML-Engine-Key`` header is compared in constant time. Inputs get the same content checks
as user uploads; one animation runs at a time so integrations cannot starve the job queue.
"""

import tempfile
import threading
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from animatica.jobs.execute import Execution
from animatica.service import upload_checks
from animatica.service.deps import Ctx
from animatica.service.errors import Forbidden, NotFound
from animatica.service.payments import constant_time_equal
from animatica.service.plans import PLANS
from animatica.service.submit import JobOptions
from animatica.service.upload_checks import Upload
from animatica.service.uploads import receive

router = APIRouter(prefix="/api/fomm", tags=["ml-engine"])
_one_at_a_time = threading.Lock()


@router.post("/video", response_class=FileResponse)
def engine_video(
    ctx: Ctx,
    source_image: Annotated[UploadFile, File()],
    driving_video: Annotated[UploadFile, File()],
    engine: Annotated[str, Form()] = "auto",
    relative: Annotated[bool, Form()] = True,
    adapt_scale: Annotated[bool, Form()] = False,
    find_best_frame: Annotated[bool, Form()] = False,
    x_ml_engine_key: Annotated[str | None, Header()] = None,
) -> FileResponse:
    if not ctx.settings.ml_engine_key:
        raise NotFound("The ML-engine endpoint is not enabled on this server.")
    if x_ml_engine_key is None or not constant_time_equal(x_ml_engine_key, ctx.settings.ml_engine_key):
        raise Forbidden("The X-ML-Engine-Key header is missing or wrong.")
    options = JobOptions(engine, relative, adapt_scale, False, find_best_frame).check(ctx.settings)
    largest = max(PLANS.values(), key=lambda plan: plan.rank)
    folder = Path(tempfile.mkdtemp(prefix="animatica-engine-"))
    try:
        limit = ctx.settings.max_upload_bytes
        receive(source_image.file, folder / "source.bin", limit, "The source image")
        receive(driving_video.file, folder / "driving.bin", limit, "The driving video")
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
        output = folder / "result.mp4"
        with _one_at_a_time:
            ctx.runner.executor(
                Execution(
                    image.path,
                    video.path,
                    output,
                    options.engine,
                    {**options.pipeline_options(), "max_frames": video.max_frames},
                ),
                lambda _progress: None,
                lambda: False,
            )
    except BaseException:
        _remove(folder)
        raise
    return FileResponse(
        output, media_type="video/mp4", filename="result.mp4", background=BackgroundTask(_remove, folder)
    )


def _remove(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
