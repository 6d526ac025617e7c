"""A user's animations: look-up, history, cancel and delete, for the API and the pages alike.

Every function takes the caller's user id and filters by it, so another user's job is simply
not found (404), which also hides whether an id exists. Both the JSON API and the web pages
call these functions, so they cannot drift apart in what they allow.
"""

import io
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from sqlalchemy import delete, func, select

from animatica.db.models import Job
from animatica.jobs import state
from animatica.jobs.engine_choice import default_engine, engine_statuses
from animatica.jobs.image import NAME as IMAGE_KIND
from animatica.service.context import ServiceContext
from animatica.service.errors import Conflict, Gone, NotFound
from animatica.service.schemas import EngineList, EngineView, JobView
from animatica.settings import Settings
from animatica.storage.base import StorageError

THUMBNAIL_SIDE = 320


def engine_list(settings: Settings) -> EngineList:
    """The engines a job may name, whether this server can run each, and the one ``auto`` runs on."""
    return EngineList(
        default=default_engine(settings),
        engines=[
            EngineView(id=e.id, available=e.available, reason=e.reason) for e in engine_statuses(settings)
        ],
    )


def job_view(job: Job) -> JobView:
    has_result = job.status == state.SUCCEEDED and job.result_key is not None
    return JobView(
        id=job.id,
        kind=job.kind or state.ANIMATION,
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
    if job.status != state.SUCCEEDED:
        raise Conflict(f"The animation is {job.status}; its result is not available.")
    if job.result_key is None:
        raise Gone("This result was deleted by the retention policy; animate again.")
    return job.result_key


def picture_key(job: Job) -> str | None:
    """The stored picture a job stands for: the one it made, for a job that makes pictures from a
    prompt (once it has), else the picture it started from."""
    if job.kind == IMAGE_KIND and job.status == state.SUCCEEDED and job.result_key:
        return job.result_key
    return job.source_key


def thumbnail(ctx: ServiceContext, user_id: int, job_id: str) -> bytes:
    """A small JPEG of the job's picture (`picture_key`), made on demand; 404 once it is gone."""
    job = load_job(ctx, user_id, job_id)
    key = picture_key(job)
    if not key:
        raise NotFound("The picture of this animation is no longer kept.")
    with tempfile.TemporaryDirectory(prefix="animatica-thumb-") as tmp:
        path = Path(tmp) / "source.png"
        try:
            ctx.storage.get_file(key, path)
        except StorageError as error:
            raise NotFound("The picture of this animation is no longer kept.") from error
        with Image.open(path) as image:
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="JPEG", quality=82)
    return buffer.getvalue()


def cancel(ctx: ServiceContext, user_id: int, job_id: str) -> Job:
    """Cancel a queued job now (credit returned) or ask its worker to stop; 409 when already over."""
    job = load_job(ctx, user_id, job_id)
    if job.status in state.FINAL:
        raise Conflict(f"The animation already {job.status}; there is nothing to cancel.")
    with ctx.db.transaction() as session:
        state.request_cancel(session, job)
    ctx.runner.cancel_local(job_id)
    return load_job(ctx, user_id, job_id)


def stop(ctx: ServiceContext, user_id: int, job_id: str) -> None:
    """Cancel the job unless it is already over (a waiting client gives up either way)."""
    with suppress(Conflict):
        cancel(ctx, user_id, job_id)


def remove(ctx: ServiceContext, user_id: int, job_id: str) -> None:
    """Delete a job and its files; a queued job is canceled (credit returned) first.

    A running job is refused (409): its worker may still write its result, which would then
    be left behind with no row pointing at it.
    """
    job = load_job(ctx, user_id, job_id)
    if job.status == state.QUEUED:
        with ctx.db.transaction() as session:
            state.request_cancel(session, job)
        job = load_job(ctx, user_id, job_id)
    if job.status not in state.FINAL:
        raise Conflict("The animation is running; cancel it and wait for it to stop before deleting it.")
    with ctx.db.transaction() as session:
        session.execute(
            delete(Job).where(Job.id == job_id, Job.user_id == user_id, Job.status.in_(state.FINAL))
        )
    for key in (job.source_key, job.driving_key, job.result_key):
        if key:
            ctx.storage.delete(key)
