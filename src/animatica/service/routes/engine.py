"""The ML-engine endpoint for direct integrations: ``POST /api/fomm/video``.

It bypasses accounts and credits, so it is off unless ``ANIMATICA_ML_ENGINE_KEY`` is set, and
the ``X-ML-Engine-Key`` header is compared in constant time (see ``service.direct``).
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from animatica.engines import AUTO
from animatica.jobs.options import JobOptions
from animatica.service import direct
from animatica.service.deps import Ctx

router = APIRouter(prefix="/api/fomm", tags=["ml-engine"])


@router.post("/video", response_class=FileResponse)
def engine_video(
    ctx: Ctx,
    source_image: Annotated[UploadFile, File()],
    driving_video: Annotated[UploadFile, File()],
    engine: Annotated[str, Form()] = AUTO,
    relative: Annotated[bool, Form()] = True,
    adapt_scale: Annotated[bool, Form()] = False,
    find_best_frame: Annotated[bool, Form()] = False,
    x_ml_engine_key: Annotated[str | None, Header()] = None,
) -> FileResponse:
    direct.require_key(ctx.settings, x_ml_engine_key)
    options = JobOptions(
        engine=engine, relative=relative, adapt_scale=adapt_scale, find_best_frame=find_best_frame
    )
    output = direct.animate(ctx, source_image.file, driving_video.file, options)
    return FileResponse(
        output,
        media_type="video/mp4",
        filename="result.mp4",
        background=BackgroundTask(direct.remove, output.parent),
    )
