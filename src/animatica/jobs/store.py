"""The job state machine, kept in the database.

``queued → running → succeeded | failed | canceled``; a queued job can also be canceled
directly. Every transition is one conditional UPDATE (``WHERE status = <expected>``) in the same
transaction as its ledger row, so a job's credit is consumed or returned exactly once even when
a cancel, a crash recovery and the worker's own finish race each other.
"""

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from animatica.db import ledger
from animatica.db.models import Job, User
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.jobs.messages import CANCELED as CANCELED_MESSAGE
from animatica.jobs.messages import public_text

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
FINAL = (SUCCEEDED, FAILED, CANCELED)
ABANDONED_MESSAGE = "The worker stopped while animating this job; your credit was returned."


def credit_ref(job_id: str) -> str:
    return f"job:{job_id}"


@dataclass(frozen=True)
class ClaimedJob:
    id: str
    user_id: int
    engine: str
    options: dict[str, Any]
    source_key: str
    driving_key: str
    attempts: int
    source_name: str = ""  # the names the user uploaded, for messages about those files
    driving_name: str = ""


def new_worker_id() -> str:
    """host:pid:nonce; host and pid let a restarted process spot jobs its dead predecessor held."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{os.urandom(3).hex()}"


def create(
    session: Session,
    *,
    job_id: str,
    user_id: int,
    engine: str,
    options: dict[str, Any],
    priority: int,
    source_name: str,
    driving_name: str,
    source_key: str,
    driving_key: str,
    notes: list[str] | None = None,
) -> Job:
    """Reserve the job's credit and queue it, atomically; raises InsufficientCredits."""
    ledger.reserve(session, user_id, credit_ref(job_id))
    job = Job(
        id=job_id,
        user_id=user_id,
        status=QUEUED,
        stage="queued",
        progress=0.0,
        engine=engine,
        options=options,
        priority=priority,
        source_name=source_name,
        driving_name=driving_name,
        source_key=source_key,
        driving_key=driving_key,
        attempts=0,
        cancel_requested=False,
        created_at=utcnow(),
    )
    if notes:
        job.notes = list(notes)
    session.add(job)
    session.flush()
    return job


def claim_next(db: Database, worker_id: str, parallel_limits: dict[str, int]) -> ClaimedJob | None:
    """Take the most urgent queued job whose owner is under their plan's parallel-job limit."""
    with db.transaction() as session:
        candidates = session.execute(
            select(Job.id, Job.user_id, User.plan_id)
            .join(User, User.id == Job.user_id)
            .where(Job.status == QUEUED)
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(50)
        ).all()
        if not candidates:
            return None
        owners = {row.user_id for row in candidates}
        running = dict(
            session.execute(
                select(Job.user_id, func.count())
                .where(Job.status == RUNNING, Job.user_id.in_(owners))
                .group_by(Job.user_id)
            ).all()
        )
        now = utcnow()
        for row in candidates:
            if running.get(row.user_id, 0) >= parallel_limits.get(row.plan_id, 1):
                continue
            claimed = session.execute(
                update(Job)
                .where(Job.id == row.id, Job.status == QUEUED)
                .values(
                    status=RUNNING,
                    stage="starting",
                    worker_id=worker_id,
                    heartbeat_at=now,
                    started_at=now,
                    attempts=Job.attempts + 1,
                )
            ).rowcount
            if claimed == 1:
                job = session.get(Job, row.id)
                assert job is not None and job.source_key and job.driving_key
                return ClaimedJob(
                    job.id,
                    job.user_id,
                    job.engine,
                    dict(job.options),
                    job.source_key,
                    job.driving_key,
                    job.attempts,
                    job.source_name,
                    job.driving_name,
                )
    return None


def report_progress(
    db: Database, job_id: str, worker_id: str, stage: str, progress: float, eta: float | None
) -> bool:
    """Persist progress; returns whether a cancel was requested meanwhile."""
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
            .values(stage=stage[:32], progress=progress, eta_seconds=eta, heartbeat_at=utcnow())
        )
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def heartbeat(db: Database, job_ids: list[str], worker_id: str) -> None:
    if not job_ids:
        return
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id.in_(job_ids), Job.status == RUNNING, Job.worker_id == worker_id)
            .values(heartbeat_at=utcnow())
        )


def succeed(
    db: Database,
    job_id: str,
    worker_id: str,
    result_key: str,
    result_bytes: int,
    frames: int,
    fps: float,
    notes: Sequence[str] = (),
) -> bool:
    """Record a finished job; `notes` (what the animation had to work around) join the job's own."""
    with db.transaction() as session:
        if notes:
            known = session.scalar(select(Job.notes).where(Job.id == job_id)) or []
            notes = [*known, *(note for note in notes if note not in known)]
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
            .values(
                status=SUCCEEDED,
                stage="done",
                progress=100.0,
                eta_seconds=0.0,
                result_key=result_key,
                result_bytes=result_bytes,
                frames=frames,
                fps=fps,
                finished_at=utcnow(),
                error=None,
                **({"notes": list(notes)} if notes else {}),
            )
        ).rowcount
        if done == 1:
            ledger.consume(session, _owner(session, job_id), credit_ref(job_id))
        return done == 1


def fail(db: Database, job_id: str, worker_id: str, message: str, status: str = FAILED) -> bool:
    """End a running job as failed or canceled and return its credit.

    The message is shown to the job's owner: whatever path an error carried is reduced to a file name.
    """
    message = public_text(message)
    with db.transaction() as session:
        done = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
            .values(status=status, stage=status, eta_seconds=None, error=message, finished_at=utcnow())
        ).rowcount
        if done == 1:
            ledger.refund(session, _owner(session, job_id), credit_ref(job_id))
        return done == 1


def request_cancel(session: Session, job: Job) -> str:
    """Cancel a queued job now (credit returned) or ask the worker to stop a running one."""
    if job.status == QUEUED:
        done = session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == QUEUED)
            .values(status=CANCELED, stage=CANCELED, error=CANCELED_MESSAGE, finished_at=utcnow())
        ).rowcount
        if done == 1:
            ledger.refund(session, job.user_id, credit_ref(job.id))
            return CANCELED
    session.execute(update(Job).where(Job.id == job.id, Job.status == RUNNING).values(cancel_requested=True))
    status = session.scalar(select(Job.status).where(Job.id == job.id))
    return str(status)


def requeue(db: Database, job_id: str, worker_id: str) -> bool:
    """Give a job back to the queue after a clean shutdown; the attempt does not count."""
    with db.transaction() as session:
        return (
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
                .values(
                    status=QUEUED,
                    stage="requeued",
                    progress=0.0,
                    eta_seconds=None,
                    worker_id=None,
                    attempts=Job.attempts - 1,
                )
            ).rowcount
            == 1
        )


def recover_abandoned(
    db: Database, stale_seconds: float, max_attempts: int, dead_workers: set[str] | None = None
) -> tuple[list[str], list[str]]:
    """Re-queue (or, past max_attempts, fail and refund) running jobs nobody is working on.

    A job is abandoned when its heartbeat is older than ``stale_seconds`` or when the worker
    that holds it is known to be dead. Returns (re-queued ids, failed ids).
    """
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    requeued: list[str] = []
    failed: list[str] = []
    with db.transaction() as session:
        rows = session.execute(
            select(
                Job.id, Job.user_id, Job.attempts, Job.worker_id, Job.heartbeat_at, Job.cancel_requested
            ).where(Job.status == RUNNING)
        ).all()
        for row in rows:
            beat: datetime | None = row.heartbeat_at
            stale = beat is None or beat < cutoff
            if not stale and row.worker_id not in (dead_workers or set()):
                continue
            guard = (Job.id == row.id, Job.status == RUNNING, Job.worker_id == row.worker_id)
            if row.attempts < max_attempts and not row.cancel_requested:
                session.execute(
                    update(Job)
                    .where(*guard)
                    .values(status=QUEUED, stage="requeued", progress=0.0, eta_seconds=None, worker_id=None)
                )
                requeued.append(row.id)
                continue
            status = CANCELED if row.cancel_requested else FAILED
            message = CANCELED_MESSAGE if row.cancel_requested else ABANDONED_MESSAGE
            done = session.execute(
                update(Job)
                .where(*guard)
                .values(status=status, stage=status, error=message, eta_seconds=None, finished_at=utcnow())
            ).rowcount
            if done == 1:
                ledger.refund(session, row.user_id, credit_ref(row.id))
                failed.append(row.id)
    return requeued, failed


def running_worker_ids(db: Database) -> set[str]:
    with db.read() as session:
        return {w for w in session.scalars(select(Job.worker_id).where(Job.status == RUNNING)).all() if w}


def _owner(session: Session, job_id: str) -> int:
    owner = session.scalar(select(Job.user_id).where(Job.id == job_id))
    assert owner is not None
    return int(owner)
