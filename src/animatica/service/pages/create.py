"""The Create page: pick a picture and a driving clip, choose options, start a job.

The upload goes through the same `submit` the API uses, so the server's checks (content, size,
duration, resolution, credit) are the ones that count; the page's script only repeats the cheap
ones so people learn about a wrong file before uploading it. The form also works without
script: it then posts normally and the server answers with a redirect or the page and its error.
The picture may also be one of the user's earlier ones (``/create?from=<job>``, a made picture's
"Animate this"): it is then copied inside the store, never uploaded again.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from animatica.errors import AnimaticaError
from animatica.jobs.engine_choice import default_engine, engine_statuses
from animatica.jobs.options import JobOptions
from animatica.service.animations import job_view, load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import NotFound
from animatica.service.pages.problems import PageProblem
from animatica.service.pages.sessions import CsrfChecked, Viewer
from animatica.service.pages.submission import form_refused, job_started
from animatica.service.pages.views import render
from animatica.service.plans import get_plan
from animatica.service.schemas import JobView
from animatica.service.submit import submit
from animatica.settings import Settings

router = APIRouter(include_in_schema=False)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/x-msvideo", "video/avi", "video/webm", "image/gif")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".webm", ".gif")


ENGINE_TEXT = {
    "landmarks": (
        "Face landmarks",
        "Moves the face in your picture along 68 facial landmarks. Works without model weights.",
    ),
    "fomm": (
        "First Order Motion Model",
        "The neural engine: learned keypoints and local motions; it can also paint in what the "
        "picture does not show.",
    ),
    "liveportrait": (
        "LivePortrait",
        "Implicit 3-D keypoints with stitching: natural head turns and expressions, rendered at "
        "512x512 around the face; the slowest engine.",
    ),
    "vaegan": (
        "VAE+GAN",
        "Moves the face through a learned face space by the driving clip's changes from its first "
        "frame: a 64x64 face, blurry, pasted back into your picture.",
    ),
}


def engine_choices(settings: Settings) -> list[dict[str, str | bool]]:
    """The engines of the form, from the same availability the API reports and submission enforces."""
    default = default_engine(settings)
    choices: list[dict[str, str | bool]] = []
    for status in engine_statuses(settings):
        label, hint = ENGINE_TEXT[status.id]
        if not status.available:
            hint = f"Not available here: {status.reason}"
        choices.append(
            {
                "id": status.id,
                "label": label,
                "hint": hint,
                "available": status.available,
                "selected": status.available and status.id == default,
            }
        )
    if not any(choice["selected"] for choice in choices):
        choices[0]["selected"] = True  # landmarks always runs
    return choices


def upload_context(ctx: ServiceContext, user: CurrentUser) -> dict[str, object]:
    """What the picture and video pickers (``_upload_fields.html``, ``create.js``) check before upload."""
    plan = get_plan(user.plan_id)
    return {
        "limits": {
            "bytes": ctx.settings.max_upload_bytes,
            "seconds": plan.max_duration_seconds,
            "side": plan.max_side,
            "fps": plan.max_fps,
            # Pictures over this are refused before decoding; smaller ones wider than `side` are scaled.
            "pixels": min(plan.max_source_pixels, ctx.settings.max_image_pixels),
        },
        "image_accept": ",".join(IMAGE_TYPES + IMAGE_EXTENSIONS),
        "video_accept": ",".join(VIDEO_TYPES + VIDEO_EXTENSIONS),
    }


def _form_context(ctx: ServiceContext, user: CurrentUser) -> dict[str, object]:
    return {"engines": engine_choices(ctx.settings), **upload_context(ctx, user)}


def _chosen(ctx: ServiceContext, user: CurrentUser, job_id: str | None) -> JobView | None:
    """The earlier job whose picture is the source (``/create?from=<job>``: "Animate this")."""
    if not job_id:
        return None
    try:
        return job_view(load_job(ctx, user.id, job_id))
    except NotFound as error:
        raise PageProblem(404, "There is no such picture in your account.", "Not found") from error


def _chosen_by_link(
    ctx: Ctx, user: Viewer, from_job: Annotated[str | None, Query(alias="from", max_length=64)] = None
) -> JobView | None:
    return _chosen(ctx, user, from_job)


# A form page's picture chosen by its link (``?from=<job>``), or None.
ChosenPicture = Annotated[JobView | None, Depends(_chosen_by_link)]


@router.get("/create")
def create_page(request: Request, ctx: Ctx, user: Viewer, chosen: ChosenPicture) -> Response:
    return render(request, ctx, "create.html", user, error=None, chosen=chosen, **_form_context(ctx, user))


@router.post("/create", dependencies=[CsrfChecked])
def create_submit(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    source_image: Annotated[UploadFile | None, File()] = None,
    driving_video: Annotated[UploadFile | None, File()] = None,
    engine: Annotated[str, Form()] = "landmarks",
    motion: Annotated[str, Form()] = "relative",
    adapt_scale: Annotated[bool, Form()] = False,
    crop_face: Annotated[bool | None, Form()] = None,
    find_best_frame: Annotated[bool, Form()] = False,
    source_job: Annotated[str | None, Form(max_length=64)] = None,
    region: Annotated[str, Form()] = "all",  # the liveportrait options, sent only for that engine
    stitching: Annotated[bool, Form()] = True,
    driving_multiplier: Annotated[float, Form()] = 1.0,
    eye_retargeting: Annotated[bool, Form()] = False,
    lip_retargeting: Annotated[bool, Form()] = False,
) -> Response:
    has_upload = source_image is not None and bool(source_image.filename)
    try:
        if not has_upload and not source_job:
            raise PageProblem(422, "Choose a source picture (JPG, PNG or WebP).")
        if driving_video is None or not driving_video.filename:
            raise PageProblem(422, "Choose a driving video (MP4, MOV, AVI, WebM or GIF).")
        if motion not in ("relative", "absolute"):
            raise PageProblem(422, "Choose relative or absolute motion.")
        options = JobOptions(
            engine=engine,
            relative=motion == "relative",
            adapt_scale=adapt_scale,
            crop_face=crop_face,
            find_best_frame=find_best_frame,
            region=region,
            stitching=stitching,
            driving_multiplier=driving_multiplier,
            eye_retargeting=eye_retargeting,
            lip_retargeting=lip_retargeting,
        )
        # An upload is used instead of the chosen earlier picture.
        job_id = submit(
            ctx,
            user,
            source_image if has_upload else None,
            driving_video,
            options,
            source_job=None if has_upload else source_job,
        )
    except AnimaticaError as error:
        chosen = None if has_upload else _chosen(ctx, user, source_job)
        return form_refused(
            request, ctx, user, error, "create.html", chosen=chosen, **_form_context(ctx, user)
        )
    return job_started(request, ctx, user, job_id)
