"""One animation's page (live progress, then the player and the download) and the History.

Every operation is the API's own function called with the signed-in user, so the pages see
exactly what the API sees, including "another user's job does not exist".
"""

import io
import tempfile
from math import ceil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from animatica.errors import AnimaticaError
from animatica.jobs import store
from animatica.service import routes_jobs
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import Conflict, NotFound, status_for
from animatica.service.pages.create import rerun
from animatica.service.pages.problems import PageProblem, wants_json
from animatica.service.pages.sessions import Caller, CsrfChecked, Viewer
from animatica.service.pages.views import eta_text, redirect, render, stage_label
from animatica.service.schemas import JobView
from animatica.storage.base import StorageError

router = APIRouter(include_in_schema=False)
THUMBNAIL_SIDE = 320
PAGE_SIZE = 12


def _view(ctx: Ctx, user: CurrentUser, job_id: str) -> JobView:
    try:
        return routes_jobs.get_animation(ctx, user, job_id)
    except NotFound as error:
        raise PageProblem(404, "There is no such animation in your account.", "Not found") from error


@router.get("/jobs/{job_id}")
def job_page(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    job = _view(ctx, user, job_id)
    return render(request, ctx, "job.html", user, job=job, final=job.status in store.FINAL)


@router.get("/jobs/{job_id}/status")
def job_status(ctx: Ctx, user: Caller, job_id: str) -> JSONResponse:
    """The API's job view plus the words the page shows, so the script holds no copy of them."""
    job = _view(ctx, user, job_id)
    return JSONResponse(
        {
            **job.model_dump(mode="json"),
            "stage_label": stage_label(job.stage),
            "eta_text": eta_text(job.eta_seconds),
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
def cancel(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    flash = "canceled"
    try:
        view = routes_jobs.cancel_animation(ctx, user, job_id)
    except Conflict:
        view, flash = _view(ctx, user, job_id), "already_final"
    if wants_json(request):
        return JSONResponse(view.model_dump(mode="json"))
    return redirect(f"/jobs/{job_id}", flash if view.status in store.FINAL else None)


@router.post("/jobs/{job_id}/delete", dependencies=[CsrfChecked])
def delete(ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    try:
        routes_jobs.delete_animation(ctx, user, job_id)
    except Conflict:
        return redirect(f"/jobs/{job_id}", "delete_running")
    return redirect("/history", "deleted")


@router.post("/jobs/{job_id}/rerun", dependencies=[CsrfChecked])
def rerun_job(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    _view(ctx, user, job_id)
    try:
        new_id = rerun(ctx, user, job_id)
    except PageProblem:
        raise
    except AnimaticaError as error:
        raise PageProblem(status_for(error), str(error), "Could not start again") from error
    return redirect(f"/jobs/{new_id}")


@router.get("/jobs/{job_id}/result")
def result(request: Request, ctx: Ctx, user: Caller, job_id: str) -> Response:
    """The video, with Range support for the player; saved as ``animatica-<id>.mp4``."""
    try:
        return routes_jobs.get_result(ctx, user, job_id, request)
    except AnimaticaError as error:
        raise PageProblem(status_for(error), str(error), "No video") from error


@router.get("/jobs/{job_id}/thumbnail")
def thumbnail(ctx: Ctx, user: Caller, job_id: str) -> Response:
    """A small JPEG of the source picture for the History; made on demand, never stored."""
    job = routes_jobs.load_job(ctx, user.id, job_id)
    if not job.source_key:
        raise NotFound("The picture of this animation is no longer kept.")
    with tempfile.TemporaryDirectory(prefix="animatica-thumb-") as tmp:
        path = Path(tmp) / "source.png"
        try:
            ctx.storage.get_file(job.source_key, path)
        except StorageError as error:
            raise NotFound("The picture of this animation is no longer kept.") from error
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=82)
    return Response(
        buffer.getvalue(), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"}
    )


@router.get("/history")
def history(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    per: Annotated[int, Query(ge=1, le=48)] = PAGE_SIZE,
) -> Response:
    listing = routes_jobs.list_animations(ctx, user, limit=per, offset=(page - 1) * per)
    pages = max(1, ceil(listing.total / per))
    if page > pages:
        return redirect(f"/history?page={pages}" + (f"&per={per}" if per != PAGE_SIZE else ""))
    return render(
        request,
        ctx,
        "history.html",
        user,
        jobs=listing.items,
        total=listing.total,
        page=page,
        pages=pages,
        per_query="" if per == PAGE_SIZE else f"&per={per}",
        final=store.FINAL,
    )
