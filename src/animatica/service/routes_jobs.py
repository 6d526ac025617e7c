"""/api/v1/animations: asynchronous animation jobs and the caller's own history.

Every look-up is filtered by the caller's id, so another user's job is simply not found (404),
which also hides whether an id exists.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from animatica.db import ledger
from animatica.db.models import Job
from animatica.jobs import store
from animatica.service.deps import Ctx, Me
from animatica.service.errors import Conflict, Gone, NotFound
from animatica.service.results import serve_file
from animatica.service.schemas import JobPage, JobView
from animatica.service.schemas import Me as MeView
from animatica.service.submit import JobOptions, submit

router = APIRouter(prefix="/api/v1", tags=["animations"])


def job_view(job: Job) -> JobView:
    has_result = job.status == store.SUCCEEDED and job.result_key is not None
    return JobView(
        id=job.id,
        status=job.status,
        progress=round(job.progress, 1),
        stage=job.stage,
        eta_seconds=job.eta_seconds,
        error=job.error,
        engine=job.engine,
        options=job.options,
        source_name=job.source_name,
        driving_name=job.driving_name,
        frames=job.frames,
        fps=job.fps,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        result_url=f"/api/v1/animations/{job.id}/result" if has_result else None,
    )


def load_job(ctx: Ctx, user_id: int, job_id: str) -> Job:
    with ctx.db.transaction() as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
    if job is None:
        raise NotFound("There is no such animation.")
    return job


@router.get("/me")
def me(ctx: Ctx, user: Me) -> MeView:
    with ctx.db.transaction() as session:
        credits = ledger.balance(session, user.id)
    return MeView(id=user.id, username=user.username, plan=user.plan_id, credits=credits)


@router.post("/animations", status_code=status.HTTP_202_ACCEPTED)
def create_animation(
    ctx: Ctx,
    user: Me,
    source_image: Annotated[UploadFile, File(description="JPG, PNG or WebP picture to animate.")],
    driving_video: Annotated[UploadFile, File(description="MP4, MOV, AVI or WebM clip with the motion.")],
    engine: Annotated[str | None, Form()] = None,
    relative: Annotated[bool, Form()] = True,
    adapt_scale: Annotated[bool, Form()] = False,
    crop_face: Annotated[bool, Form()] = False,
    find_best_frame: Annotated[bool, Form()] = False,
    fit: Annotated[str, Form()] = "crop",
) -> JSONResponse:
    options = JobOptions(
        engine or ctx.settings.engine, relative, adapt_scale, crop_face, find_best_frame, fit
    )
    job_id = submit(ctx, user, source_image, driving_video, options)
    view = job_view(load_job(ctx, user.id, job_id))
    return JSONResponse(
        view.model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/animations/{job_id}"},
    )


@router.get("/animations")
def list_animations(
    ctx: Ctx,
    user: Me,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    with ctx.db.transaction() as session:
        total = session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user.id)) or 0
        jobs = session.scalars(
            select(Job)
            .where(Job.user_id == user.id)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
            .offset(offset)
        ).all()
    return JobPage(items=[job_view(job) for job in jobs], total=total, limit=limit, offset=offset)


@router.get("/animations/{job_id}")
def get_animation(ctx: Ctx, user: Me, job_id: str) -> JobView:
    return job_view(load_job(ctx, user.id, job_id))


@router.get("/animations/{job_id}/result", response_class=Response)
def get_result(ctx: Ctx, user: Me, job_id: str, request: Request) -> Response:
    job = load_job(ctx, user.id, job_id)
    if job.status != store.SUCCEEDED:
        raise Conflict(f"The animation is {job.status}; its result is not available.")
    if job.result_key is None:
        raise Gone("This result was deleted by the retention policy; animate again.")
    return serve_file(request, ctx.storage, job.result_key, f"animatica-{job.id}.mp4", "video/mp4")


@router.post("/animations/{job_id}/cancel")
def cancel_animation(ctx: Ctx, user: Me, job_id: str) -> JobView:
    job = load_job(ctx, user.id, job_id)
    if job.status in store.FINAL:
        raise Conflict(f"The animation already {job.status}; there is nothing to cancel.")
    with ctx.db.transaction() as session:
        store.request_cancel(session, job)
    ctx.runner.cancel_local(job_id)
    return job_view(load_job(ctx, user.id, job_id))


@router.delete("/animations/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_animation(ctx: Ctx, user: Me, job_id: str) -> Response:
    """Delete a job and its files; a queued job is canceled (credit returned) first."""
    job = load_job(ctx, user.id, job_id)
    if job.status == store.QUEUED:
        with ctx.db.transaction() as session:
            store.request_cancel(session, job)
        job = load_job(ctx, user.id, job_id)
    if job.status not in store.FINAL:
        raise Conflict("The animation is running; cancel it and wait for it to stop before deleting it.")
    with ctx.db.transaction() as session:
        session.execute(Job.__table__.delete().where(Job.id == job_id, Job.user_id == user.id))
    for key in (job.source_key, job.driving_key, job.result_key):
        if key:
            ctx.storage.delete(key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
