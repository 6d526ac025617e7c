"""The job state machine, kept in the database: the one writer of a job's status and stage.

``queued → running → succeeded | failed | canceled``; a queued job can also be canceled
directly. Every transition is one conditional UPDATE (``WHERE status = <expected>``) in the same
transaction as its ledger row, so a job's credit is consumed or returned exactly once even when
a cancel, a crash recovery and the worker's own finish race each other.

Nothing else writes ``Job.status``, ``Job.stage``, the progress, the heartbeat or the claim. The
in-process runner, the Celery tasks and the service's cancel all go through these functions, so
whichever of them acts on a job, the guards above hold: a job is claimed by one worker, ended
once, and a late or duplicate caller finds the row already moved on and changes nothing.

A running job belongs to one ``worker_id``: a runner's own (host, pid, nonce) or ``celery`` for
every Celery worker of a cluster, which take turns on the same job (prepare, segments, join).
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
from animatica.jobs.messages import credit_words, public_text

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = "queued", "running", "succeeded", "failed", "canceled"
FINAL = (SUCCEEDED, FAILED, CANCELED)
ABANDONED_MESSAGE = "The worker stopped while animating this job; your credit was returned."
ANIMATION = "animation"  # the kind of a job that names none
# Stages of a queued job: waiting for a worker, or (distributed mode) handed to the broker.
WAITING, DISPATCHED, REQUEUED = "queued", "dispatched", "requeued"

# The stored input files a job can have: slot -> (key column, column of the user's file name).
INPUT_SLOTS = {"source": ("source_key", "source_name"), "driving": ("driving_key", "driving_name")}


def credit_ref(job_id: str) -> str:
    return f"job:{job_id}"


@dataclass(frozen=True)
class ClaimedJob:
    """What a worker needs of a job: plain data, read once when it takes the job."""

    id: str
    user_id: int
    kind: str
    engine: str
    options: dict[str, Any]
    priority: int
    attempts: int
    inputs: dict[str, str]  # slot -> storage key
    names: dict[str, str]  # slot -> the name the user uploaded it under, for messages about it


def _claimed(job: Job) -> ClaimedJob:
    inputs: dict[str, str] = {}
    names: dict[str, str] = {}
    for slot, (key_column, name_column) in INPUT_SLOTS.items():
        key = getattr(job, key_column)
        if key:
            inputs[slot] = key
            names[slot] = getattr(job, name_column) or ""
    return ClaimedJob(
        job.id,
        job.user_id,
        job.kind or ANIMATION,
        job.engine,
        dict(job.options or {}),
        job.priority,
        job.attempts,
        inputs,
        names,
    )


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
    source_key: str | None,
    driving_name: str = "",
    driving_key: str | None = None,
    notes: list[str] | None = None,
    kind: str = ANIMATION,
    cost: int = 1,
) -> Job:
    """Reserve the job's ``cost`` in credits and queue it, atomically; raises InsufficientCredits.

    A job of cost 0 reserves nothing, so ending it, whichever way, moves no credit either."""
    if cost > 0:
        ledger.reserve(session, user_id, credit_ref(job_id), cost)
    job = Job(
        id=job_id,
        user_id=user_id,
        status=QUEUED,
        stage=WAITING,
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
    if kind != ANIMATION:  # the column's default: rows need not name it
        job.kind = kind
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
        for row in candidates:
            if running.get(row.user_id, 0) >= parallel_limits.get(row.plan_id, 1):
                continue
            if _take(session, row.id, worker_id, "starting"):
                job = session.get(Job, row.id)
                assert job is not None
                return _claimed(job)
    return None


def claim(db: Database, job_id: str, worker_id: str, stage: str) -> ClaimedJob | None:
    """Take this queued job for ``worker_id``, or resume it when ``worker_id`` already holds it.

    A Celery task may be delivered twice (a worker died, the broker restarted): the second
    delivery finds the job running under the cluster's id and carries on with it. None when the
    job is not this worker's to run (unknown, ended, or held by another worker).
    """
    with db.transaction() as session:
        _take(session, job_id, worker_id, stage)
        job = session.get(Job, job_id)
        if job is None or job.status != RUNNING or job.worker_id != worker_id:
            return None
        return _claimed(job)


def _take(session: Session, job_id: str, worker_id: str, stage: str) -> bool:
    now = utcnow()
    return (
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == QUEUED)
            .values(
                status=RUNNING,
                stage=stage[:32],
                worker_id=worker_id,
                heartbeat_at=now,
                started_at=now,
                attempts=Job.attempts + 1,
            )
        ).rowcount
        == 1
    )


def load(db: Database, job_id: str) -> ClaimedJob | None:
    """A job's data whatever its state (for the steps of a job a worker already holds)."""
    with db.read() as session:
        job = session.get(Job, job_id)
        return None if job is None else _claimed(job)


def status(db: Database, job_id: str) -> tuple[str | None, bool]:
    """(status, cancel requested) of a job; (None, False) when there is no such job."""
    with db.read() as session:
        row = session.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).first()
    return (None, False) if row is None else (str(row.status), bool(row.cancel_requested))


def cancel_requested(db: Database, job_id: str) -> bool:
    return status(db, job_id)[1]


def mark_dispatched(db: Database, job_id: str) -> bool:
    """Record that the broker accepted a queued job's message (so the reconciler need not resend)."""
    with db.transaction() as session:
        return (
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == QUEUED, Job.stage == WAITING)
                .values(stage=DISPATCHED)
            ).rowcount
            == 1
        )


def undispatched(db: Database, before: datetime) -> list[tuple[str, int]]:
    """(id, priority) of queued jobs created before ``before`` whose message never reached the broker."""
    with db.read() as session:
        rows = session.execute(
            select(Job.id, Job.priority).where(
                Job.status == QUEUED, Job.stage == WAITING, Job.created_at < before
            )
        ).all()
    return [(row.id, row.priority) for row in rows]


def set_stage(db: Database, job_id: str, worker_id: str, stage: str) -> bool:
    """Name what a running job is doing now, without touching its progress."""
    with db.transaction() as session:
        return (
            session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == RUNNING, Job.worker_id == worker_id)
                .values(stage=stage[:32], heartbeat_at=utcnow())
            ).rowcount
            == 1
        )


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
        message = credit_words(message, bool(ledger.reserved(session, credit_ref(job_id))))
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
                    stage=REQUEUED,
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
                    .values(status=QUEUED, stage=REQUEUED, progress=0.0, eta_seconds=None, worker_id=None)
                )
                requeued.append(row.id)
                continue
            status = CANCELED if row.cancel_requested else FAILED
            message = CANCELED_MESSAGE if row.cancel_requested else ABANDONED_MESSAGE
            message = credit_words(message, bool(ledger.reserved(session, credit_ref(row.id))))
            done = session.execute(
                update(Job)
                .where(*guard)
                .values(status=status, stage=status, error=message, eta_seconds=None, finished_at=utcnow())
            ).rowcount
            if done == 1:
                ledger.refund(session, row.user_id, credit_ref(row.id))
                failed.append(row.id)
    return requeued, failed


def expire_result(db: Database, job_id: str) -> None:
    """Record that a finished job's result was deleted by the retention policy."""
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(FINAL))
            .values(result_key=None, stage="expired")
        )


def running_worker_ids(db: Database) -> set[str]:
    with db.read() as session:
        return {w for w in session.scalars(select(Job.worker_id).where(Job.status == RUNNING)).all() if w}


def _owner(session: Session, job_id: str) -> int:
    owner = session.scalar(select(Job.user_id).where(Job.id == job_id))
    assert owner is not None
    return int(owner)
