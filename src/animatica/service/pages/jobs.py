"""One animation's page (live progress, then the player and the download) and the History.

Every operation is a function of ``animations``, the same the API calls, with the signed-in
user, so the pages see exactly what the API sees, including "another user's job does not exist".
"""

from math import ceil
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from animatica.errors import AnimaticaError
from animatica.jobs import state
from animatica.service import animations
from animatica.service.animations import job_view, load_job
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import Conflict, Gone, NotFound, status_for
from animatica.service.pages.events import status_payload
from animatica.service.pages.problems import PageProblem, wants_json
from animatica.service.pages.sessions import Caller, CsrfChecked, Viewer
from animatica.service.pages.views import costs_credit, redirect, render
from animatica.service.results import download, serve_file
from animatica.service.schemas import JobView
from animatica.service.submit import rerun

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 12


def _view(ctx: Ctx, user: CurrentUser, job_id: str) -> JobView:
    try:
        return job_view(load_job(ctx, user.id, job_id))
    except NotFound as error:
        raise PageProblem(404, "There is no such animation in your account.", "Not found") from error


@router.get("/jobs/{job_id}")
def job_page(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    job = _view(ctx, user, job_id)
    return render(request, ctx, "job.html", user, job=job, final=job.status in state.FINAL)


@router.get("/jobs/{job_id}/status")
def job_status(ctx: Ctx, user: Caller, job_id: str) -> JSONResponse:
    """Polled by the job page when its event stream (``events.py``) is not available."""
    return JSONResponse(status_payload(_view(ctx, user, job_id)), headers={"Cache-Control": "no-store"})


@router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
def cancel(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    try:
        view = job_view(animations.cancel(ctx, user.id, job_id))
        flash = "canceled" if costs_credit(view.kind) else "canceled_free"
    except Conflict:
        view, flash = _view(ctx, user, job_id), "already_final"
    if wants_json(request):
        return JSONResponse(view.model_dump(mode="json"))
    return redirect(f"/jobs/{job_id}", flash if view.status in state.FINAL else None)


@router.post("/jobs/{job_id}/delete", dependencies=[CsrfChecked])
def delete(ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    try:
        animations.remove(ctx, user.id, job_id)
    except Conflict:
        return redirect(f"/jobs/{job_id}", "delete_running")
    return redirect("/history", "deleted")


@router.post("/jobs/{job_id}/rerun", dependencies=[CsrfChecked])
def rerun_job(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    try:
        new_id = rerun(ctx, user, job_id)
    except Gone as error:
        raise PageProblem(410, str(error), "Files no longer kept") from error
    except AnimaticaError as error:
        raise PageProblem(status_for(error), str(error), "Could not start again") from error
    return redirect(f"/jobs/{new_id}")


@router.get("/jobs/{job_id}/result")
def result(request: Request, ctx: Ctx, user: Caller, job_id: str) -> Response:
    """The result, with Range support for the player; saved as ``animatica-<id>`` and its type's suffix."""
    try:
        key = animations.result_key(ctx, user.id, job_id)
    except AnimaticaError as error:
        raise PageProblem(status_for(error), str(error), "No video") from error
    return serve_file(request, ctx.storage, key, *download(job_id, key))


@router.get("/jobs/{job_id}/thumbnail")
def thumbnail(ctx: Ctx, user: Caller, job_id: str) -> Response:
    """A small JPEG of the source picture for the History; made on demand, never stored."""
    return Response(
        animations.thumbnail(ctx, user.id, job_id),
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/history")
def history(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per: Annotated[int, Query(ge=1, le=48)] = PAGE_SIZE,
) -> Response:
    listing = animations.history(ctx, user.id, limit=per, offset=(page - 1) * per)
    pages = max(1, ceil(listing.total / per))
    if page > pages:
        return redirect(f"/history?page={pages}" + (f"&per={per}" if per != PAGE_SIZE else ""))
    return render(
        request,
        ctx,
        "history.html",
        user,
        jobs=[job_view(job) for job in listing.jobs],
        total=listing.total,
        page=page,
        pages=pages,
        per_query="" if per == PAGE_SIZE else f"&per={per}",
        final=state.FINAL,
    )
