"""The Edit page: turn the head and open or close the eyes and lips of one photo.

The photo is uploaded, or one of the user's earlier pictures is chosen (it is copied inside the
store, not uploaded again). Apply queues a ``portrait_edit`` job through the same `submit_edit`
the API uses; the page's script then follows the job and shows the picture with its download link,
keeping the sliders and the photo, so the next Apply edits the same photo again. Without script
the form posts normally and the page comes back showing the job, then its result.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from animatica.errors import AnimaticaError
from animatica.jobs import state
from animatica.jobs.portrait_edit import NAME, problem
from animatica.liveportrait.edit_options import ANGLE_LIMITS, RATIO_LIMITS
from animatica.service import animations
from animatica.service.animations import job_view, load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.edits import available, checked_edit, submit_edit
from animatica.service.errors import NotFound
from animatica.service.pages.create import IMAGE_EXTENSIONS, IMAGE_TYPES
from animatica.service.pages.problems import PageProblem
from animatica.service.pages.sessions import CsrfChecked, Viewer
from animatica.service.pages.submission import form_refused, job_started
from animatica.service.pages.views import render, templates
from animatica.service.plans import get_plan
from animatica.service.schemas import JobView

router = APIRouter(include_in_schema=False)
RECENT = 8  # earlier pictures offered to choose from
DEFAULT_RATIO = 0.3  # where an eye or lip slider starts before the user moves it

# The navigation offers Edit only where the LivePortrait weights are in place.
templates.env.globals["portrait_editing"] = available


def _job(ctx: ServiceContext, user: CurrentUser, job_id: str) -> JobView:
    try:
        return job_view(load_job(ctx, user.id, job_id))
    except NotFound as error:
        raise PageProblem(404, "There is no such job in your account.", "Not found") from error


def _recent_pictures(ctx: ServiceContext, user: CurrentUser) -> list[JobView]:
    """The user's latest jobs whose picture is still kept, one per picture name."""
    seen: set[str] = set()
    pictures: list[JobView] = []
    for job in animations.history(ctx, user.id, limit=4 * RECENT, offset=0).jobs:
        if not job.source_key or job.source_name in seen:
            continue
        seen.add(job.source_name)
        pictures.append(job_view(job))
        if len(pictures) == RECENT:
            break
    return pictures


def _values(job: JobView | None) -> dict[str, object]:
    """The sliders' positions: the shown job's edit, else no change."""
    options = job.options if job is not None and job.kind == NAME else {}
    return {
        "pitch": options.get("pitch", 0.0),
        "yaw": options.get("yaw", 0.0),
        "roll": options.get("roll", 0.0),
        "eyes": options.get("eyes"),
        "lips": options.get("lips"),
        "crop": options.get("crop", True),
    }


def _context(
    ctx: ServiceContext, user: CurrentUser, chosen: JobView | None, shown: JobView | None
) -> dict[str, object]:
    plan = get_plan(user.plan_id)
    return {
        "unavailable": problem(ctx.settings),
        "chosen": chosen,
        "shown": shown,
        "shown_final": shown is not None and shown.status in state.FINAL,
        "recent": _recent_pictures(ctx, user),
        "values": _values(shown),
        "angle_limits": ANGLE_LIMITS,
        "ratio_limits": RATIO_LIMITS,
        "default_ratio": DEFAULT_RATIO,
        "image_accept": ",".join(IMAGE_TYPES + IMAGE_EXTENSIONS),
        "limits": {"bytes": ctx.settings.max_upload_bytes, "side": plan.max_side},
    }


@router.get("/edit")
def edit_page(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    from_job: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    job: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """``?from=<job>`` picks that job's picture; ``?job=<edit>`` shows an edit, its picture chosen
    and its sliders set, so Apply edits the same photo again."""
    shown = _job(ctx, user, job) if job else None
    chosen = _job(ctx, user, from_job) if from_job else shown
    context = _context(ctx, user, chosen, shown)
    return render(request, ctx, "edit.html", user, error=None, **context)


@router.post("/edit", dependencies=[CsrfChecked])
def edit_submit(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    picture: Annotated[UploadFile | None, File()] = None,
    from_job: Annotated[str | None, Form(max_length=64)] = None,
    pitch: Annotated[str, Form()] = "0",
    yaw: Annotated[str, Form()] = "0",
    roll: Annotated[str, Form()] = "0",
    eyes: Annotated[str | None, Form()] = None,
    lips: Annotated[str | None, Form()] = None,
    set_eyes: Annotated[bool, Form()] = False,
    set_lips: Annotated[bool, Form()] = False,
    crop: Annotated[bool, Form()] = False,
    keep_crop: Annotated[bool, Form()] = False,
) -> Response:
    # A slider always sends its value: its checkbox says whether that part of the face changes.
    # A checkbox sends nothing when unticked; the hidden ``keep_crop`` says the form had one.
    crop = crop or not keep_crop
    try:
        edit = checked_edit(
            pitch=pitch,
            yaw=yaw,
            roll=roll,
            eyes=(eyes or None) if set_eyes else None,
            lips=(lips or None) if set_lips else None,
        )
        has_picture = picture is not None and bool(picture.filename)
        job_id = submit_edit(
            ctx, user, edit, picture=picture if has_picture else None, from_job=from_job or None, crop=crop
        )
    except AnimaticaError as error:
        chosen = _job(ctx, user, from_job) if from_job else None
        return form_refused(request, ctx, user, error, "edit.html", **_context(ctx, user, chosen, None))
    return job_started(
        request,
        ctx,
        user,
        job_id,
        url=f"/edit?job={job_id}",
        status_url=f"/jobs/{job_id}/status",
        result_url=f"/jobs/{job_id}/result",
    )
