"""The Live page: animate a portrait from the webcam while the user watches.

The page itself only offers the choices (portrait, engine, size, recording); the session is made
by ``POST /live/sessions`` and the frames travel over the live WebSocket, both driven by
``static/live.js``. Engines whose weights are missing are left out rather than shown disabled,
since a live session cannot fall back to a queue, and each engine says how fast it really runs on
a CPU so nobody starts LivePortrait expecting a video call.
"""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from animatica.jobs import state
from animatica.jobs.engine_choice import engine_statuses
from animatica.service import animations
from animatica.service.animations import job_view
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.live import allowance, live_hub, utc_day
from animatica.service.pages.create import ENGINE_TEXT, IMAGE_EXTENSIONS, IMAGE_TYPES
from animatica.service.pages.sessions import Viewer
from animatica.service.pages.views import render
from animatica.service.plans import get_plan
from animatica.service.schemas import JobView
from animatica.settings import Settings

router = APIRouter(include_in_schema=False)

PORTRAITS = 8  # earlier pictures offered to choose from
SIZES = (128, 192, 256, 320, 384, 512)
DEFAULT_SIZE = 256

# Figures from the engine benchmarks on 2 CPU cores (README, Engines); a live frame is one
# batch-1 forward pass, so the neural engines run at their unbatched speed.
LIVE_SPEED = {
    "landmarks": "Real time: about 45 frames per second at 256x256 on 2 CPU cores.",
    "fomm": (
        "A few frames per second: about 4 at 256x256 on 2 CPU cores with the public vox-256 "
        "weights; camera frames in between are skipped."
    ),
    "liveportrait": (
        "Several seconds per frame on a CPU (about 8 s at 512x512 on 2 cores): a slide show, "
        "not a video call. Real time needs a GPU."
    ),
}


def live_engines(settings: Settings) -> list[dict[str, str]]:
    """The engines a live session can start here, landmarks first, each with its expected speed."""
    return [
        {"id": status.id, "label": ENGINE_TEXT[status.id][0], "speed": LIVE_SPEED[status.id]}
        for status in engine_statuses(settings)
        if status.available and status.id in LIVE_SPEED
    ]


def portrait_choices(ctx: ServiceContext, user: CurrentUser) -> list[JobView]:
    """The user's latest finished jobs whose picture is still kept, one per picture name."""
    seen: set[str] = set()
    choices: list[JobView] = []
    for job in animations.history(ctx, user.id, limit=4 * PORTRAITS, offset=0).jobs:
        if job.status not in state.FINAL or not job.source_key or job.source_name in seen:
            continue
        seen.add(job.source_name)
        choices.append(job_view(job))
        if len(choices) == PORTRAITS:
            break
    return choices


def seconds_left_today(ctx: ServiceContext, user: CurrentUser) -> float:
    """Live seconds the user's plan still allows today, on the clock the sessions are metered by."""
    with ctx.db.read() as session:
        today = utc_day(live_hub(ctx).clock())
        return allowance(session, user.id, get_plan(user.plan_id), today)


def clock_text(seconds: float) -> str:
    minutes, rest = divmod(max(0, int(seconds)), 60)
    return f"{minutes}:{rest:02d}"


@router.get("/live")
def live_page(request: Request, ctx: Ctx, user: Viewer) -> Response:
    left = seconds_left_today(ctx, user)
    return render(
        request,
        ctx,
        "live.html",
        user,
        engines=live_engines(ctx.settings),
        portraits=portrait_choices(ctx, user),
        sizes=SIZES,
        default_size=DEFAULT_SIZE,
        image_accept=",".join(IMAGE_TYPES + IMAGE_EXTENSIONS),
        max_bytes=ctx.settings.max_upload_bytes,
        seconds_left=left,
        left_text=clock_text(left),
        minutes_per_day=get_plan(user.plan_id).live_minutes_per_day,
    )
