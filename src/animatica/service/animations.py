"""A user's animations: look-up, history, cancel and delete, for the API and the pages alike.

Every function takes the caller's user id and filters by it, so another user's job is simply
not found (404), which also hides whether an id exists. Both the JSON API and the web pages
call these functions, so they cannot drift apart in what they allow.
"""

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from animatica.db.models import Job
from animatica.jobs import store
from animatica.service.context import ServiceContext
from animatica.service.errors import Conflict, Gone, NotFound
from animatica.service.schemas import JobView


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
        notes=list(job.notes or []),
    )


def load_job(ctx: ServiceContext, user_id: int, job_id: str) -> Job:
    with ctx.db.read() as session:
        job = session.scalar(select(Job).where(Job.id == job_id, Job.user_id == user_id))
    if job is None:
        raise NotFound("There is no such animation.")
    return job


@dataclass(frozen=True)
class History:
    jobs: list[Job]
    total: int


def history(ctx: ServiceContext, user_id: int, limit: int, offset: int) -> History:
    """One page of the user's jobs, newest first, with the total for pagination."""
    with ctx.db.read() as session:
        total = session.scalar(select(func.count()).select_from(Job).where(Job.user_id == user_id)) or 0
        jobs = session.scalars(
            select(Job)
            .where(Job.user_id == user_id)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
            .offset(offset)
        ).all()
    return History(list(jobs), int(total))


def result_key(ctx: ServiceContext, user_id: int, job_id: str) -> str:
    """The stored key of a finished job's video; 409 before success, 410 after retention."""
    job = load_job(ctx, user_id, job_id)
    if job.status != store.SUCCEEDED:
        raise Conflict(f"The animation is {job.status}; its result is not available.")
    if job.result_key is None:
        raise Gone("This result was deleted by the retention policy; animate again.")
    return job.result_key


def cancel(ctx: ServiceContext, user_id: int, job_id: str) -> Job:
    """Cancel a queued job now (credit returned) or ask its worker to stop; 409 when already over."""
    job = load_job(ctx, user_id, job_id)
    if job.status in store.FINAL:
        raise Conflict(f"The animation already {job.status}; there is nothing to cancel.")
    with ctx.db.transaction() as session:
        store.request_cancel(session, job)
    ctx.runner.cancel_local(job_id)
    return load_job(ctx, user_id, job_id)


def remove(ctx: ServiceContext, user_id: int, job_id: str) -> None:
    """Delete a job and its files; a queued job is canceled (credit returned) first.

    A running job is refused (409): its worker may still write its result, which would then
    be left behind with no row pointing at it.
    """
    job = load_job(ctx, user_id, job_id)
    if job.status == store.QUEUED:
        with ctx.db.transaction() as session:
            store.request_cancel(session, job)
        job = load_job(ctx, user_id, job_id)
    if job.status not in store.FINAL:
        raise Conflict("The animation is running; cancel it and wait for it to stop before deleting it.")
    with ctx.db.transaction() as session:
        session.execute(
            delete(Job).where(Job.id == job_id, Job.user_id == user_id, Job.status.in_(store.FINAL))
        )
    for key in (job.source_key, job.driving_key, job.result_key):
        if key:
            ctx.storage.delete(key)
