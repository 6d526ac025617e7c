"""Rendering pages: the templates, what every page shows (user, credits, CSRF token, one-off
messages) and the security headers every page carries.

Messages that must survive a redirect ("The animation was deleted.") travel as a short code in a
cookie and are looked up here, so no text from a request is ever echoed into a page.
"""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from animatica.db import ledger
from animatica.errors import AnimaticaError
from animatica.jobs import kinds
from animatica.jobs.messages import credit_words
from animatica.service.avatars import avatar_version
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.pages.problems import PageProblem, SignInRequired, wants_json
from animatica.service.pages.sessions import (
    CSRF_COOKIE,
    csrf_token,
    page_sessions,
    signin_url,
    viewer_or_none,
)
from animatica.service.plans import get_plan
from animatica.service.schemas import JobView

SERVICE_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = SERVICE_DIR / "templates"
STATIC_DIR = SERVICE_DIR / "static"
FLASH_COOKIE = "animatica_flash"
CANCELED_TEXT = "The animation was canceled and your credit was returned."

FLASHES: dict[str, tuple[str, str]] = {
    "welcome": ("success", "Welcome to Animatica! Your account is ready."),
    "signed_in": ("success", "You are signed in."),
    "signed_out": ("info", "You are signed out. See you soon!"),
    "deleted": ("success", "The animation and its files were deleted."),
    "delete_running": ("error", "That animation is still running; cancel it first, then delete it."),
    "canceled": ("info", CANCELED_TEXT),
    "canceled_free": ("info", credit_words(CANCELED_TEXT, credit_reserved=False)),
    "already_final": ("info", "That animation had already finished."),
    "avatar_set": ("success", "Your avatar is updated."),
}

# Pages only load their own files; the only form leaving the site goes to Stripe's checkout.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; style-src 'self'; "
        "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self' https://checkout.stripe.com"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Balances and job states change; a page restored from cache would show stale ones.
    "Cache-Control": "no-store",
}

STAGES = {
    "queued": "Waiting in the queue",
    "requeued": "Waiting in the queue",
    "starting": "Starting",
    "load": "Loading the engine",
    "prepare": "Studying the picture",
    "animate": "Animating frames",
    "edit": "Editing the picture",
    "generate": "Painting the picture",
    "encode": "Writing the video",
    "done": "Done",
    "expired": "Result expired",
    "failed": "Failed",
    "canceled": "Canceled",
}


def _fingerprints() -> dict[str, str]:
    """Content hashes for static URLs, so browsers never run yesterday's script with today's page."""
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        for path in STATIC_DIR.iterdir()
        if path.is_file()
    }


_VERSIONS = _fingerprints()


def static_url(name: str) -> str:
    return f"/static/{name}?v={_VERSIONS.get(name, '0')}"


def stage_label(stage: str) -> str:
    return STAGES.get(stage, stage.replace("_", " ").capitalize())


def eta_text(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 60:
        return f"about {round(seconds)} s left"
    minutes, rest = divmod(round(seconds), 60)
    return f"about {minutes} min {rest:02d} s left"


def when(moment: datetime | None) -> str:
    """A compact UTC timestamp; the page's script rewrites it in the reader's own time zone."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB"


def _live_recording_label(job: JobView) -> str:
    if job.frames and job.fps:  # known once it is converted
        return f"Live recording, {max(1, round(job.frames / job.fps))} s"
    return "Live recording"


# What a job is, per kind, where the pages describe it. An animation has no entry: it is told by
# its driving video ("with clip.mp4") and its motion mode.
KIND_LABELS = {
    "portrait_edit": lambda job: "portrait edit",
    "face_swap": lambda job: f"face swapped into {job.driving_name}",
    "live_recording": _live_recording_label,
    "image": lambda job: "picture",
}


def costs_credit(kind: str) -> bool:
    """Whether a job of ``kind`` reserves a credit: only then do its pages speak of one coming back."""
    try:
        return kinds.get(kind).cost > 0
    except AnimaticaError:  # a kind this process does not run: say what a paid job would
        return True


def job_label(job: JobView) -> str | None:
    """How the pages name ``job``'s kind, or None for an animation (described by its driving video)."""
    label = KIND_LABELS.get(job.kind)
    return label(job) if label is not None else None


# The noun a page uses for a job of each kind ("Delete this picture"); every other kind is an animation.
KIND_NOUNS = {"image": "picture", "portrait_edit": "edited portrait", "face_swap": "face swap"}


def job_noun(kind: str) -> str:
    return KIND_NOUNS.get(kind, "animation")


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals.update(
    static_url=static_url,
    stage_label=stage_label,
    eta_text=eta_text,
    job_label=job_label,
    job_noun=job_noun,
    costs_credit=costs_credit,
)
templates.env.filters.update(when=when, iso=iso, megabytes=megabytes)


def credits_of(ctx: ServiceContext, user: CurrentUser) -> int:
    with ctx.db.read() as session:
        return ledger.balance(session, user.id)


def render(
    request: Request,
    ctx: ServiceContext,
    template: str,
    user: CurrentUser | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render a page with what every page needs: the viewer, their credits and the CSRF token."""
    token, new_token = csrf_token(request)
    flash = FLASHES.get(request.cookies.get(FLASH_COOKIE, ""))
    values: dict[str, Any] = {
        "user": user,
        "credits": credits_of(ctx, user) if user else None,
        "plan": get_plan(user.plan_id) if user else None,
        "csrf": token,
        "flash": flash,
        "path": request.url.path,
        "settings": ctx.settings,
        "avatar": avatar_version(ctx, user.id) if user else None,
        **context,
    }
    response = templates.TemplateResponse(request, template, values, status_code=status_code)
    if new_token:
        page_sessions(ctx).set_cookie(response, request, CSRF_COOKIE, token)
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path="/")
    response.headers.update(SECURITY_HEADERS)
    return response


def redirect(url: str, flash: str | None = None) -> RedirectResponse:
    """A 303 (so the browser follows with GET), optionally leaving a message for the next page."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        response.set_cookie(FLASH_COOKIE, flash, max_age=60, path="/", httponly=True, samesite="lax")
    return response


def problem_response(request: Request, ctx: ServiceContext, problem: PageProblem) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": str(problem)}, status_code=problem.status_code)
    return render(
        request,
        ctx,
        "error.html",
        viewer_or_none(ctx, request),
        status_code=problem.status_code,
        title=problem.title,
        message=str(problem),
        status=problem.status_code,
    )


def sign_in_response(request: Request, required: SignInRequired) -> Response:
    if wants_json(request):
        return JSONResponse({"detail": "Your session has ended; sign in again."}, status_code=401)
    return redirect(signin_url(required.next_url))
