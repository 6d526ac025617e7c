"""The Face swap page: a face photo and a video, which face to replace, a consent box, one job.

The form posts to the same `submit_swap` the API uses, so consent, the upload checks, the face
checks, the plan's limits and the credit are the server's, decided in one place; the page reuses
the Create page's pickers and upload script (``create.js``) and adds only the face choice and the
consent box (``swap.js``). Without script the form posts normally and the server answers with a
redirect to the job's page, or this page with its error. As on the Create page, the photo may be
one of the user's earlier pictures (``/swap?from=<job>``), copied inside the store.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from animatica.errors import AnimaticaError
from animatica.jobs import kinds
from animatica.jobs.face_swap import NAME
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import Invalid, status_for
from animatica.service.pages.create import (
    IMAGE_EXTENSIONS,
    IMAGE_TYPES,
    VIDEO_EXTENSIONS,
    VIDEO_TYPES,
    _chosen,
)
from animatica.service.pages.problems import PageProblem, wants_json
from animatica.service.pages.sessions import CsrfChecked, Viewer
from animatica.service.pages.views import credits_of, redirect, render
from animatica.service.plans import get_plan
from animatica.service.ratelimit import RetryLater
from animatica.service.swaps import CONSENT_STATEMENT, SwapForm, submit_swap, swap_engine_choices

router = APIRouter(include_in_schema=False)

WHICH_MODES = ("largest", "all", "index", "reference")


def which_face(mode: str, index: str | None) -> str:
    """The face choice (``face.tracks.FaceChoice``) that the form's two fields describe."""
    if mode not in WHICH_MODES:
        raise Invalid("Choose which face of the video to replace.")
    if mode != "index":
        return mode
    text = (index or "").strip()
    if not text.isdigit():
        raise Invalid("Give the number of the face to replace: 1 for the leftmost face, 2 for the next…")
    number = int(text)
    if number < 1:
        raise Invalid("Faces are numbered from 1 (the leftmost face).")
    return f"index:{number - 1}"


def form_context(ctx: ServiceContext, user: CurrentUser) -> dict[str, object]:
    plan = get_plan(user.plan_id)
    return {
        "engines": swap_engine_choices(ctx.settings),
        "cost": kinds.get(NAME).cost,
        "consent_statement": CONSENT_STATEMENT,
        "visible_watermark": ctx.settings.swap_visible_watermark,
        "limits": {
            "bytes": ctx.settings.max_upload_bytes,
            "seconds": plan.max_duration_seconds,
            "side": plan.max_side,
            "fps": plan.max_fps,
            "pixels": min(plan.max_source_pixels, ctx.settings.max_image_pixels),
        },
        "image_accept": ",".join(IMAGE_TYPES + IMAGE_EXTENSIONS),
        "video_accept": ",".join(VIDEO_TYPES + VIDEO_EXTENSIONS),
    }


@router.get("/swap")
def swap_page(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    from_job: Annotated[str | None, Query(alias="from", max_length=64)] = None,
) -> Response:
    chosen = _chosen(ctx, user, from_job)
    return render(request, ctx, "swap.html", user, error=None, chosen=chosen, **form_context(ctx, user))


@router.post("/swap", dependencies=[CsrfChecked])
def swap_submit(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    source_image: Annotated[UploadFile | None, File()] = None,
    driving_video: Annotated[UploadFile | None, File()] = None,
    reference: Annotated[UploadFile | None, File()] = None,
    which: Annotated[str, Form()] = "largest",
    face_number: Annotated[str | None, Form()] = None,
    engine: Annotated[str, Form()] = "auto",
    consent: Annotated[bool, Form()] = False,
    source_job: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    has_upload = source_image is not None and bool(source_image.filename)
    try:
        if not has_upload and not source_job:
            raise PageProblem(422, "Choose a photo of the face to put in (JPG, PNG or WebP).")
        if driving_video is None or not driving_video.filename:
            raise PageProblem(422, "Choose the video whose face is replaced (MP4, MOV, AVI, WebM or GIF).")
        form = SwapForm(which=which_face(which, face_number), engine=engine, consent=consent)
        chosen = reference if which == "reference" else None
        job_id = submit_swap(
            ctx,
            user,
            source_image if has_upload else None,
            driving_video,
            form,
            reference=chosen,
            source_job=None if has_upload else source_job,
        )
    except AnimaticaError as error:
        code = status_for(error)
        headers = error.headers if isinstance(error, RetryLater) else {}
        if wants_json(request):
            return JSONResponse({"detail": str(error)}, status_code=code, headers=headers)
        earlier = None if has_upload else _chosen(ctx, user, source_job)
        page = render(
            request,
            ctx,
            "swap.html",
            user,
            status_code=code,
            error=str(error),
            chosen=earlier,
            **form_context(ctx, user),
        )
        page.headers.update(headers)
        return page
    url = f"/jobs/{job_id}"
    if wants_json(request):
        return JSONResponse(
            {"id": job_id, "url": url, "credits": credits_of(ctx, user)},
            status_code=202,
            headers={"Location": url},
        )
    return redirect(url)
