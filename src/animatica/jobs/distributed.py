"""Jobs on Celery workers: prepare → segments in parallel → join → finalise.

* ``prepare`` claims the queued job, probes the inputs, resolves the initial driving frame
  once (the best-frame search scans the whole video, which no segment should repeat), and
  writes the segment plan.
* The dispatcher hands a user's pending segments to the broker while that user has fewer than
  ``segments_per_user`` in flight, most urgent job first. A long job therefore never fills the
  queue: other users' work (and paid work, which has a higher message priority) interleaves.
* ``segment`` animates driving frames ``[start, stop)`` with the ordinary pipeline (relative
  motion still measured from the whole video's initial frame) and stores them losslessly
  under a fixed key. Re-running it overwrites the same file, and the row is marked done once.
* The task that finishes the last segment claims the join exactly once; ``join`` encodes the
  frames in order with the driving video's sound and ends the job through the same state
  machine as the in-process runner (consuming the credit, or returning it on failure).

The database is the source of truth; the broker only carries "run this now". Every task is
safe to run twice, which is what at-least-once delivery (late acknowledgement, redelivery when
a worker dies or the broker restarts) needs. ``reconcile`` re-sends whatever the broker never
accepted.

Tasks are bounded in time by Celery's soft limit, which the message carries: a segment's follows
from its frames as an in-process job's does (``JobBounds``), ``job_timeout_seconds`` bounds every
task when it is set, and otherwise ``task_soft_time_limit`` applies. A task that overruns is not
retried (it would overrun again): its job fails with the same words as in-process, credit returned.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery, Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update

from animatica.db.migrate import upgrade_to_head
from animatica.db.models import Job, User
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.errors import AnimaticaError
from animatica.jobs import plan_store, store
from animatica.jobs.bounds import JobBounds
from animatica.jobs.celery_app import build_app, message_priority, producer_app
from animatica.jobs.engine_choice import request_options
from animatica.jobs.execute import PIPELINE_OPTIONS
from animatica.jobs.join import join_segments
from animatica.jobs.messages import CANCELED, INTERNAL_ERROR, time_limit_message, user_error
from animatica.jobs.segment_file import write_segment
from animatica.jobs.segments import plan_segments, segment_key
from animatica.settings import Settings, get_settings
from animatica.storage import Storage, open_storage

log = logging.getLogger("animatica.jobs")

WORKER_ID = "celery"  # owner of every distributed job in the jobs table
PREPARE, SEGMENT, JOIN = "animatica.prepare", "animatica.segment", "animatica.join"
RESEND_AFTER = 5.0  # seconds a message may stay unsent before the reconciler sends it again
HEARTBEAT_INTERVAL = 1.0
KILL_AFTER_SOFT_LIMIT = 60.0  # a task that ignores its soft limit this long is killed


# --- per-process context ------------------------------------------------------------------


@dataclass
class Context:
    settings: Settings
    db: Database
    storage: Storage
    pid: int


_settings_override: Settings | None = None
_context: Context | None = None
_context_lock = threading.Lock()
_torch_threads = 0


def context() -> Context:
    """Database and store of this process, opened lazily: a forked pool process opens its own."""
    global _context
    with _context_lock:
        if _context is None or _context.pid != os.getpid():
            settings = _settings_override or get_settings()
            db = Database(settings.database_url)
            _context = Context(settings, db, open_storage(settings.storage_url), os.getpid())
        return _context


def _configure_torch() -> None:
    if _torch_threads:
        import torch

        if torch.get_num_threads() != _torch_threads:
            torch.set_num_threads(_torch_threads)


# --- sending ------------------------------------------------------------------------------


def _app(settings: Settings) -> Celery:
    # Keyed by process: a forked process must not publish over its parent's broker connections.
    return producer_app(settings.broker_url, settings.celery_queue, os.getpid())


def _send(settings: Settings, name: str, args: list[Any], urgency: int, frames: int | None = None) -> None:
    """Send a task; ``frames`` is the driving frames it animates, when known, for its time limit."""
    limits: dict[str, float] = {}
    seconds = JobBounds.from_settings(settings).time_limit(frames)
    if seconds is not None:
        limits = {"soft_time_limit": seconds, "time_limit": seconds + KILL_AFTER_SOFT_LIMIT}
    _app(settings).send_task(
        name,
        args=args,
        queue=settings.celery_queue,
        priority=message_priority(settings.broker_url, urgency),
        **limits,
    )


def enqueue_job(settings: Settings, db: Database, job_id: str, urgency: int) -> bool:
    """Hand a queued job to the workers; False (and the reconciler retries) if the broker is down."""
    try:
        _send(settings, PREPARE, [job_id], urgency)
    except Exception:
        log.exception("could not send a job to the broker; it will be sent again", extra={"job_id": job_id})
        return False
    with db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == store.QUEUED, Job.stage == "queued")
            .values(stage="dispatched")
        )
    return True


def dispatch(ctx: Context, user_id: int) -> int:
    """Queue the user's next pending segments up to their in-flight cap; returns how many."""
    now = utcnow()
    with ctx.db.transaction() as session:
        # One dispatcher per user at a time (PostgreSQL row lock; SQLite serialises writers).
        session.execute(select(User.id).where(User.id == user_id).with_for_update())
        room = ctx.settings.segments_per_user - plan_store.in_flight(session, user_id)
        if room <= 0:
            return 0
        seg = plan_store.segments
        rows = session.execute(
            select(seg.c.job_id, seg.c.idx, seg.c.urgency, seg.c.start, seg.c.stop)
            .join(Job, Job.id == seg.c.job_id)
            .where(seg.c.user_id == user_id, seg.c.status == plan_store.PENDING, Job.status == store.RUNNING)
            .order_by(seg.c.urgency.desc(), Job.created_at, seg.c.job_id, seg.c.idx)
            .limit(room)
        ).all()
        for row in rows:
            session.execute(
                update(seg)
                .where(seg.c.job_id == row.job_id, seg.c.idx == row.idx)
                .values(status=plan_store.QUEUED, sent=False, queued_at=now)
            )
    for row in rows:
        _send_segment(ctx, row.job_id, row.idx, row.urgency, _frames(row.start, row.stop))
    return len(rows)


def _frames(start: int, stop: int | None) -> int | None:
    """A segment's length; None for a last segment that runs to an end only estimated."""
    return None if stop is None else stop - start


def _send_segment(ctx: Context, job_id: str, index: int, urgency: int, frames: int | None) -> None:
    try:
        _send(ctx.settings, SEGMENT, [job_id, index], urgency, frames)
    except Exception:
        log.exception("could not send a segment; it will be sent again", extra={"job_id": job_id})
        return
    with ctx.db.transaction() as session:
        plan_store.mark_sent(session, job_id, index)


def _maybe_join(ctx: Context, job_id: str, urgency: int) -> None:
    with ctx.db.transaction() as session:
        claimed = plan_store.claim_join(session, job_id, utcnow())
    if claimed:
        _send_join(ctx, job_id, urgency)


def _send_join(ctx: Context, job_id: str, urgency: int) -> None:
    try:
        _send(ctx.settings, JOIN, [job_id], urgency)
    except Exception:
        log.exception("could not send a join; it will be sent again", extra={"job_id": job_id})
        return
    with ctx.db.transaction() as session:
        plan_store.set_join_state(session, job_id, plan_store.JOIN_SENT, utcnow())


def reconcile(ctx: Context) -> None:
    """Send again what the broker never accepted and fill free segment slots.

    Runs periodically in every worker. Duplicates are harmless (every task is idempotent), so
    this errs on the side of sending.
    """
    cutoff = utcnow() - timedelta(seconds=RESEND_AFTER)
    seg, plans = plan_store.segments, plan_store.plans
    with ctx.db.transaction() as session:
        unsent_jobs = session.execute(
            select(Job.id, Job.priority).where(
                Job.status == store.QUEUED, Job.stage == "queued", Job.created_at < cutoff
            )
        ).all()
        unsent_segments = session.execute(
            select(seg.c.job_id, seg.c.idx, seg.c.urgency, seg.c.start, seg.c.stop).where(
                seg.c.status == plan_store.QUEUED, seg.c.sent.is_(False), seg.c.queued_at < cutoff
            )
        ).all()
        unsent_joins = session.execute(
            select(plans.c.job_id, plans.c.urgency)
            .join(Job, Job.id == plans.c.job_id)
            .where(
                plans.c.join_state == plan_store.JOIN_CLAIMED,
                plans.c.join_at < cutoff,
                Job.status == store.RUNNING,
            )
        ).all()
        waiting_users = session.scalars(
            select(seg.c.user_id)
            .join(Job, Job.id == seg.c.job_id)
            .where(seg.c.status == plan_store.PENDING, Job.status == store.RUNNING)
            .distinct()
        ).all()
        finished = session.execute(
            select(plans.c.job_id, plans.c.urgency)
            .join(Job, Job.id == plans.c.job_id)
            .where(plans.c.join_state == plan_store.JOIN_NONE, Job.status == store.RUNNING)
        ).all()
    for job in unsent_jobs:
        enqueue_job(ctx.settings, ctx.db, job.id, job.priority)
    for row in unsent_segments:
        _send_segment(ctx, row.job_id, row.idx, row.urgency, _frames(row.start, row.stop))
    for row in unsent_joins:
        _send_join(ctx, row.job_id, row.urgency)
    for user_id in waiting_users:
        dispatch(ctx, user_id)
    for row in finished:
        _maybe_join(ctx, row.job_id, row.urgency)


# --- job state ----------------------------------------------------------------------------


def _claim(ctx: Context, job_id: str) -> Job | None:
    """Take a queued job (or resume one this cluster already holds); None if it is not ours to run."""
    now = utcnow()
    with ctx.db.transaction() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == store.QUEUED)
            .values(
                status=store.RUNNING,
                stage="preparing",
                worker_id=WORKER_ID,
                heartbeat_at=now,
                started_at=now,
                attempts=Job.attempts + 1,
            )
        )
        job = session.get(Job, job_id)
        if job is None or job.status != store.RUNNING or job.worker_id != WORKER_ID:
            return None
        session.expunge(job)
        return job


def _end(ctx: Context, job_id: str, message: str, status: str = store.FAILED) -> None:
    """Fail or cancel a job (its credit returned), release its segment slots, delete its parts."""
    store.fail(ctx.db, job_id, WORKER_ID, message, status=status)
    with ctx.db.transaction() as session:
        plan_store.drop_unfinished(session, job_id)
        parts = plan_store.job_segments(session, job_id)
        owner = session.scalar(select(Job.user_id).where(Job.id == job_id))
    _delete_parts(ctx, job_id, len(parts))
    if owner is not None:
        dispatch(ctx, int(owner))


def _delete_parts(ctx: Context, job_id: str, count: int) -> None:
    for index in range(count):
        ctx.storage.delete(segment_key(job_id, index))


def _job_status(ctx: Context, job_id: str) -> tuple[str | None, bool]:
    with ctx.db.transaction() as session:
        row = session.execute(select(Job.status, Job.cancel_requested).where(Job.id == job_id)).first()
    return (None, False) if row is None else (str(row.status), bool(row.cancel_requested))


class _Watch:
    """Keeps the job's heartbeat fresh while a task works and notices a cancel request."""

    def __init__(self, ctx: Context, job_id: str) -> None:
        self.ctx = ctx
        self.job_id = job_id
        self._last = 0.0
        self.cancelled = False

    def beat(self, _progress: object = None) -> None:
        now = time.monotonic()
        if now - self._last < HEARTBEAT_INTERVAL:
            return
        self._last = now
        store.heartbeat(self.ctx.db, [self.job_id], WORKER_ID)
        self.cancelled = self.cancelled or _job_status(self.ctx, self.job_id)[1]

    def should_cancel(self) -> bool:
        self.beat()
        return self.cancelled


def _backoff(retries: int) -> float:
    return float(min(600, 2 ** (retries + 1)))


def _retry_or_fail(task: Task, ctx: Context, job_id: str, error: BaseException) -> None:
    """Retry a task that hit an unexpected error, with backoff; after the last retry fail the job."""
    if task.request.retries < ctx.settings.task_max_retries:
        log.warning("task failed, retrying", extra={"job_id": job_id, "error": repr(error)})
        raise task.retry(exc=error, countdown=_backoff(task.request.retries))
    log.error("task failed for good", extra={"job_id": job_id, "error": repr(error)})
    _end(ctx, job_id, INTERNAL_ERROR)


def _soft_limit(task: Task, settings: Settings) -> float:
    """The soft time limit this run of ``task`` had: its message's, else the workers' default."""
    limits = task.request.timelimit or (None, None)
    return float(limits[1] or settings.task_soft_time_limit)


def task_failed(task: Task, ctx: Context, job_id: str, error: Exception) -> None:
    """Settle the job of a task that raised ``error``: an overrun or a problem with the job's input
    ends it (credit returned, in words for the user), anything else is retried first."""
    if isinstance(error, SoftTimeLimitExceeded):
        limit = _soft_limit(task, ctx.settings)
        log.warning("task overran its time limit", extra={"job_id": job_id, "limit": limit})
        _end(ctx, job_id, time_limit_message(limit))
    elif isinstance(error, AnimaticaError):
        _end(ctx, job_id, user_error(error))
    else:
        _retry_or_fail(task, ctx, job_id, error)


# --- tasks --------------------------------------------------------------------------------


@shared_task(name=PREPARE, bind=True)
def prepare_task(self: Task, job_id: str) -> None:
    ctx = context()
    try:
        prepare(ctx, job_id)
    except Exception as error:
        task_failed(self, ctx, job_id, error)


@shared_task(name=SEGMENT, bind=True)
def segment_task(self: Task, job_id: str, index: int) -> None:
    ctx = context()
    try:
        run_segment(ctx, job_id, index, worker=f"{self.request.hostname}:{os.getpid()}")
    except AnimaticaError as error:
        from animatica.pipeline import Cancelled

        if isinstance(error, Cancelled):
            _end(ctx, job_id, CANCELED, status=store.CANCELED)
        else:
            task_failed(self, ctx, job_id, error)
    except Exception as error:
        task_failed(self, ctx, job_id, error)


@shared_task(name=JOIN, bind=True)
def join_task(self: Task, job_id: str) -> None:
    ctx = context()
    try:
        join(ctx, job_id)
    except Exception as error:
        task_failed(self, ctx, job_id, error)


# --- the work -----------------------------------------------------------------------------


def _fetch_inputs(ctx: Context, job: Job, folder: Path) -> tuple[Path, Path]:
    assert job.source_key and job.driving_key
    source = folder / Path(job.source_key).name
    driving = folder / Path(job.driving_key).name
    ctx.storage.get_file(job.source_key, source)
    ctx.storage.get_file(job.driving_key, driving)
    return source, driving


def _request(job: Job, source: Path, driving: Path, output: Path, settings: Settings, **extra: Any) -> Any:
    from animatica.pipeline import AnimationRequest

    options = {k: v for k, v in dict(job.options).items() if k in PIPELINE_OPTIONS}
    options.update(extra)
    return AnimationRequest(
        source=source,
        driving=driving,
        output=output,
        **request_options(settings, job.engine),  # the worker's own FOMM weights
        device=settings.device,
        precision=settings.precision,
        batch_size=settings.batch_size,
        **options,
    )


def prepare(ctx: Context, job_id: str) -> None:
    """Claim the job, plan its segments and dispatch the first ones; idempotent."""
    job = _claim(ctx, job_id)
    if job is None:
        return
    with ctx.db.transaction() as session:
        planned = plan_store.get_plan(session, job_id) is not None
    if not planned:
        _plan(ctx, job)
    with ctx.db.transaction() as session:
        session.execute(
            update(Job).where(Job.id == job_id, Job.status == store.RUNNING).values(stage="animating")
        )
    dispatch(ctx, job.user_id)
    _maybe_join(ctx, job_id, job.priority)  # a job whose plan exists but whose join was lost


def _plan(ctx: Context, job: Job) -> None:
    from fractions import Fraction

    from animatica.media.probe import probe, require_image, require_video
    from animatica.pipeline import animate

    with tempfile.TemporaryDirectory(prefix="animatica-prepare-") as tmp:
        folder = Path(tmp)
        source, driving = _fetch_inputs(ctx, job, folder)
        require_image(probe(source))
        info = require_video(probe(driving))
        best: int | None = job.options.get("best_frame")
        if job.options.get("find_best_frame"):
            # The search reads the whole video: do it once here, not in every segment.
            _configure_torch()
            watch = _Watch(ctx, job.id)
            result = animate(
                _request(
                    job, source, driving, folder / "probe/", ctx.settings, start=0, stop=1, keep_audio=False
                ),
                on_progress=watch.beat,
                should_cancel=watch.should_cancel,
            )
            best = result.initial_frame
        rate = info.frame_rate or Fraction(25)
        count = info.frame_count or 0
        parts = plan_segments(count, rate, ctx.settings.segment_seconds, exact=info.frame_count_exact)
        with ctx.db.transaction() as session:
            plan_store.create_plan(
                session,
                job_id=job.id,
                user_id=job.user_id,
                urgency=job.priority,
                frame_rate=rate,
                has_audio=info.has_audio,
                total_frames=count if info.frame_count_exact else None,
                best_frame=best,
                parts=parts,
                now=utcnow(),
            )


def run_segment(ctx: Context, job_id: str, index: int, worker: str = "") -> None:
    """Animate one segment into its fixed storage key; a segment already done is not redone."""
    from animatica.media.reader import iter_frames
    from animatica.pipeline import Cancelled, animate

    status, cancel = _job_status(ctx, job_id)
    with ctx.db.transaction() as session:
        plan = plan_store.get_plan(session, job_id)
        part = plan_store.get_segment(session, job_id, index)
    if status != store.RUNNING or plan is None or part is None:
        if status in store.FINAL:
            with ctx.db.transaction() as session:
                plan_store.drop_unfinished(session, job_id)
        return
    if part.status != plan_store.DONE:
        if cancel:
            raise Cancelled("the animation was canceled")
        with ctx.db.transaction() as session:
            attempt = plan_store.start_attempt(session, job_id, index, worker or socket.gethostname())
        if attempt > ctx.settings.task_max_retries + 3:
            raise AnimaticaError(
                f"segment {index} stopped its worker {attempt - 1} times; the job was given up and "
                "your credit was returned."
            )
        with ctx.db.transaction() as session:
            job = session.get(Job, job_id)
            assert job is not None
            session.expunge(job)
        _configure_torch()
        watch = _Watch(ctx, job_id)
        with tempfile.TemporaryDirectory(prefix="animatica-segment-") as tmp:
            folder = Path(tmp)
            source, driving = _fetch_inputs(ctx, job, folder)
            extra: dict[str, Any] = {"start": part.start, "stop": part.stop, "keep_audio": False}
            if plan.best_frame is not None:
                extra.update(best_frame=plan.best_frame, find_best_frame=False)
            frames_dir = folder / "frames"
            animate(
                _request(job, source, driving, frames_dir, ctx.settings, **extra),
                on_progress=watch.beat,
                should_cancel=watch.should_cancel,
            )
            packed = folder / "segment.mkv"
            count = write_segment(iter_frames(frames_dir), packed, plan.frame_rate)
            ctx.storage.put_file(segment_key(job_id, index), packed)
        with ctx.db.transaction() as session:
            plan_store.finish_segment(session, job_id, index, count, utcnow())
            parts = plan_store.job_segments(session, job_id)
        done = sum(p.frames or 0 for p in parts if p.status == plan_store.DONE)
        total = plan.total_frames or sum(
            (p.frames or 0) if p.stop is None else p.stop - p.start for p in parts
        )
        percent = min(99.0, 100.0 * done / total) if total else 0.0
        store.report_progress(ctx.db, job_id, WORKER_ID, "animating", percent, None)
    dispatch(ctx, plan.user_id)
    _maybe_join(ctx, job_id, plan.urgency)


def join(ctx: Context, job_id: str) -> None:
    """Join the segments, store the result and finish the job; idempotent."""
    status, cancel = _job_status(ctx, job_id)
    if status != store.RUNNING:
        return
    with ctx.db.transaction() as session:
        plan = plan_store.get_plan(session, job_id)
        parts = plan_store.job_segments(session, job_id)
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
    if plan is None or any(p.status != plan_store.DONE for p in parts):
        return
    if cancel:
        _end(ctx, job_id, CANCELED, status=store.CANCELED)
        return
    store.report_progress(ctx.db, job_id, WORKER_ID, "joining", 99.0, None)
    with tempfile.TemporaryDirectory(prefix="animatica-join-") as tmp:
        folder = Path(tmp)
        files = []
        for part in parts:
            local = folder / f"{part.index:05d}.mkv"
            ctx.storage.get_file(segment_key(job_id, part.index), local)
            files.append(local)
        audio = None
        if plan.has_audio:
            assert job.driving_key
            audio = folder / Path(job.driving_key).name
            ctx.storage.get_file(job.driving_key, audio)
        output = folder / "result.mp4"
        frames = join_segments(files, output, plan.frame_rate, audio, [p.frames for p in parts])
        if plan.total_frames is not None and frames != plan.total_frames:
            raise AnimaticaError(
                f"the joined video has {frames} frames, not {plan.total_frames}; your credit was returned."
            )
        key = f"jobs/{job_id}/result.mp4"
        ctx.storage.put_file(key, output)
        won = store.succeed(
            ctx.db, job_id, WORKER_ID, key, output.stat().st_size, frames, float(plan.frame_rate)
        )
    if not won and _job_status(ctx, job_id)[0] != store.SUCCEEDED:
        ctx.storage.delete(key)  # canceled meanwhile; a duplicate join of a succeeded job keeps it
    _delete_parts(ctx, job_id, len(parts))
    dispatch(ctx, plan.user_id)
    log.info("job finished", extra={"job_id": job_id, "status": store.SUCCEEDED if won else "duplicate"})


# --- the worker process -------------------------------------------------------------------


def _reconcile_forever(interval: float) -> None:
    while True:
        time.sleep(interval)
        try:
            reconcile(context())
        except Exception:
            log.exception("reconcile failed")


def _start_reconciler(interval: float) -> Callable[..., None]:
    """A handler that starts the reconcile loop in each pool process, right after it is forked.

    Not in the parent: a thread running there while the pool forks a replacement process (after
    a crash, say) could leave a lock held in the child forever.
    """

    def start(**_: Any) -> None:
        threading.Thread(target=_reconcile_forever, args=(interval,), daemon=True).start()

    return start


def run_worker(
    queues: Sequence[str] | None = None,
    concurrency: int = 1,
    loglevel: str = "INFO",
    hostname: str | None = None,
    settings: Settings | None = None,
    pool: str = "prefork",
    reconcile_seconds: float | None = None,
) -> None:
    """Run a Celery worker in this process until it is stopped (the ``animatica worker`` command).

    Each pool process animates one task at a time with ``torch_threads`` threads (default: the
    cores shared evenly between the ``concurrency`` processes).
    """
    from celery.signals import worker_process_init

    global _settings_override, _torch_threads
    settings = settings or get_settings()
    _settings_override = settings
    _torch_threads = settings.torch_threads or max(1, (os.cpu_count() or 1) // max(1, concurrency))
    app = build_app(settings)
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)  # a worker may start before the app ever ran on this database
    db.dispose()
    handler = _start_reconciler(reconcile_seconds or settings.job_heartbeat_seconds)
    worker_process_init.connect(handler, weak=False)
    argv = [
        "worker",
        f"--concurrency={concurrency}",
        f"--loglevel={loglevel}",
        f"--queues={','.join(queues or [settings.celery_queue])}",
        f"--pool={pool}",
        "--without-gossip",
        "--without-mingle",
    ]
    if hostname:
        argv.append(f"--hostname={hostname}")
    app.worker_main(argv)
