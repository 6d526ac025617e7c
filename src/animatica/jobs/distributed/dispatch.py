"""Sending work to the broker: a queued job, a user's next segments, a join; and reconcile.

What has been sent is recorded in the database after the broker accepted it (a job's stage
``dispatched``, a segment's ``sent``, a plan's join state ``sent``), so the reconciler can tell what
never reached the broker and send it again. Sending twice is harmless: every task is idempotent.
"""

import logging
import os
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import select, update

from animatica.db.models import Job, User
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.errors import AnimaticaError
from animatica.jobs import kinds, state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.distributed import plans
from animatica.jobs.distributed.app import message_priority, producer_app
from animatica.jobs.distributed.worker import Context
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")

# Task names (stable: messages in a broker outlive a deployment).
PREPARE, RUN, SEGMENT, JOIN = "animatica.prepare", "animatica.run", "animatica.segment", "animatica.join"
RESEND_AFTER = 5.0  # seconds a message may stay unsent before the reconciler sends it again
KILL_AFTER_SOFT_LIMIT = 60.0  # a task that ignores its soft limit this long is killed


def _app(settings: Settings) -> Celery:
    # Keyed by process: a forked process must not publish over its parent's broker connections.
    return producer_app(settings.broker_url, settings.celery_queue, os.getpid())


def send(
    settings: Settings,
    name: str,
    args: list[Any],
    urgency: int,
    frames: int | None = None,
    engine: str | None = None,
) -> None:
    """Send a task; ``frames`` is the driving frames it animates, when known, and ``engine`` what
    animates them, for its time limit."""
    limits: dict[str, float] = {}
    seconds = JobBounds.from_settings(settings).for_engine(engine).time_limit(frames)
    if seconds is not None:
        limits = {"soft_time_limit": seconds, "time_limit": seconds + KILL_AFTER_SOFT_LIMIT}
    _app(settings).send_task(
        name,
        args=args,
        queue=settings.celery_queue,
        priority=message_priority(settings.broker_url, urgency),
        **limits,
    )


def entry_task(job: state.ClaimedJob) -> tuple[str, int | None]:
    """The first task of a job and the size that bounds it: ``prepare`` for a segmented kind (its
    segments are bounded one by one), else ``run`` for the whole job."""
    try:
        kind = kinds.get(job.kind)
    except AnimaticaError:
        return RUN, None  # unknown here: a worker that knows the kind runs it, one that does not fails it
    if kind.segmented is not None:
        return PREPARE, None
    return RUN, kind.size(job.options)


def enqueue(settings: Settings, db: Database, job_id: str, urgency: int) -> bool:
    """Hand a queued job to the workers; False (and the reconciler retries) if the broker is down."""
    job = state.load(db, job_id)
    if job is None:
        return False
    name, frames = entry_task(job)
    try:
        send(settings, name, [job_id], urgency, frames, job.engine)
    except Exception:
        log.exception("could not send a job to the broker; it will be sent again", extra={"job_id": job_id})
        return False
    state.mark_dispatched(db, job_id)
    return True


def dispatch(ctx: Context, user_id: int) -> int:
    """Queue the user's next pending segments up to their in-flight cap; returns how many."""
    now = utcnow()
    with ctx.db.transaction() as session:
        # One dispatcher per user at a time (PostgreSQL row lock; SQLite serialises writers).
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
        room = ctx.settings.segments_per_user - plans.in_flight(session, user_id)
        if room <= 0:
            return 0
        seg = plans.segments
        rows = session.execute(
            select(seg.c.job_id, seg.c.idx, seg.c.urgency, seg.c.start, seg.c.stop, Job.engine)
            .join(Job, Job.id == seg.c.job_id)
            .where(seg.c.user_id == user_id, seg.c.status == plans.PENDING, Job.status == state.RUNNING)
            .order_by(seg.c.urgency.desc(), Job.created_at, seg.c.job_id, seg.c.idx)
            .limit(room)
        ).all()
        for row in rows:
            session.execute(
                update(seg)
                .where(seg.c.job_id == row.job_id, seg.c.idx == row.idx)
                .values(status=plans.QUEUED, sent=False, queued_at=now)
            )
    for row in rows:
        send_segment(ctx, row.job_id, row.idx, row.urgency, _frames(row.start, row.stop), row.engine)
    return len(rows)


def _frames(start: int, stop: int | None) -> int | None:
    """A segment's length; None for a last segment that runs to an end only estimated."""
    return None if stop is None else stop - start


def send_segment(
    ctx: Context, job_id: str, index: int, urgency: int, frames: int | None, engine: str | None = None
) -> None:
    try:
        send(ctx.settings, SEGMENT, [job_id, index], urgency, frames, engine)
    except Exception:
        log.exception("could not send a segment; it will be sent again", extra={"job_id": job_id})
        return
    with ctx.db.transaction() as session:
        plans.mark_sent(session, job_id, index)


def maybe_join(ctx: Context, job_id: str, urgency: int) -> None:
    """Send the join when every segment is done; only the first caller to see that sends it."""
    with ctx.db.transaction() as session:
        claimed = plans.claim_join(session, job_id, utcnow())
    if claimed:
        send_join(ctx, job_id, urgency)


def send_join(ctx: Context, job_id: str, urgency: int) -> None:
    try:
        send(ctx.settings, JOIN, [job_id], urgency)
    except Exception:
        log.exception("could not send a join; it will be sent again", extra={"job_id": job_id})
        return
    with ctx.db.transaction() as session:
        plans.set_join_state(session, job_id, plans.JOIN_SENT, utcnow())


def reconcile(ctx: Context) -> None:
    """Send again what the broker never accepted and fill free segment slots.

    Runs periodically in every worker. Duplicates are harmless (every task is idempotent), so
    this errs on the side of sending.
    """
    cutoff = utcnow() - timedelta(seconds=RESEND_AFTER)
    seg, plan_table = plans.segments, plans.plans
    unsent_jobs = state.undispatched(ctx.db, cutoff)
    with ctx.db.transaction() as session:
        unsent_segments = session.execute(
            select(seg.c.job_id, seg.c.idx, seg.c.urgency, seg.c.start, seg.c.stop, Job.engine)
            .join(Job, Job.id == seg.c.job_id)
            .where(seg.c.status == plans.QUEUED, seg.c.sent.is_(False), seg.c.queued_at < cutoff)
        ).all()
        unsent_joins = session.execute(
            select(plan_table.c.job_id, plan_table.c.urgency)
            .join(Job, Job.id == plan_table.c.job_id)
            .where(
                plan_table.c.join_state == plans.JOIN_CLAIMED,
                plan_table.c.join_at < cutoff,
                Job.status == state.RUNNING,
            )
        ).all()
        waiting_users = session.scalars(
            select(seg.c.user_id)
            .join(Job, Job.id == seg.c.job_id)
            .where(seg.c.status == plans.PENDING, Job.status == state.RUNNING)
            .distinct()
        ).all()
        finished = session.execute(
            select(plan_table.c.job_id, plan_table.c.urgency)
            .join(Job, Job.id == plan_table.c.job_id)
            .where(plan_table.c.join_state == plans.JOIN_NONE, Job.status == state.RUNNING)
        ).all()
    for job_id, priority in unsent_jobs:
        enqueue(ctx.settings, ctx.db, job_id, priority)
    for row in unsent_segments:
        send_segment(ctx, row.job_id, row.idx, row.urgency, _frames(row.start, row.stop), row.engine)
    for row in unsent_joins:
        send_join(ctx, row.job_id, row.urgency)
    for user_id in waiting_users:
        dispatch(ctx, user_id)
    for row in finished:
        maybe_join(ctx, row.job_id, row.urgency)
