"""What each Celery task does, on top of the lifecycle's steps; every stage is idempotent.

Each stage first reads in the database whether its work is still to do (the job running, the plan
written, the segment done, the join claimed), because a task may be delivered twice or arrive
after its job was canceled. Work goes to fixed storage keys, so a repeated stage overwrites its own
files, and the job ends through `state`, so a late duplicate changes nothing.
"""

import logging
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

from animatica.db.types import utcnow
from animatica.errors import AnimaticaError
from animatica.jobs import kinds, lifecycle, state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.distributed import plans
from animatica.jobs.distributed.dispatch import dispatch, maybe_join
from animatica.jobs.distributed.worker import WORKER_ID, Context
from animatica.jobs.kinds import Execution, JobKind
from animatica.jobs.lifecycle import ThreadExecutor, Watch
from animatica.jobs.messages import CANCELED
from animatica.jobs.segments import Segment, segment_key

log = logging.getLogger("animatica.jobs")


def end(ctx: Context, job_id: str, message: str, status: str = state.FAILED) -> None:
    """Fail or cancel a job (its credit returned), release its segment slots, delete its parts."""
    state.fail(ctx.db, job_id, WORKER_ID, message, status=status)
    with ctx.db.transaction() as session:
        plans.drop_unfinished(session, job_id)
        parts = plans.job_segments(session, job_id)
        plan = plans.get_plan(session, job_id)
    _delete_parts(ctx, job_id, len(parts), plan)
    job = state.load(ctx.db, job_id)
    if job is not None:
        dispatch(ctx, job.user_id)


def _delete_parts(ctx: Context, job_id: str, count: int, plan: plans.Plan | None) -> None:
    for index in range(count):
        ctx.storage.delete(segment_key(job_id, index))
    if plan is not None and plan.prepared_key:
        ctx.storage.delete(plan.prepared_key)


def run_whole(
    ctx: Context,
    job_id: str,
    *,
    overrun: Callable[[BaseException], str | None] | None = None,
    retry: Callable[[BaseException], None] | None = None,
) -> str | None:
    """Claim the job and run it whole through the lifecycle; None when it is not ours to run."""
    job = state.claim(ctx.db, job_id, WORKER_ID, "starting")
    if job is None:
        return None
    try:
        size = kinds.get(job.kind).size(job.options)
    except AnimaticaError:
        size = None  # run_job fails the job with the reason
    watch = Watch(
        ctx.db,
        job.id,
        WORKER_ID,
        bounds=JobBounds.from_settings(ctx.settings).for_engine(job.engine),
        size=size,
    )
    executor = ThreadExecutor(ctx.settings, set_threads=False)  # the process set its threads at start
    status = lifecycle.run_job(
        ctx.db, ctx.storage, executor, job, WORKER_ID, watch, overrun=overrun, retry=retry
    )
    log.info("job finished", extra={"job_id": job_id, "status": status})
    return status


def _segmented(kind: JobKind) -> kinds.SegmentedRun:
    if kind.segmented is None:
        raise AnimaticaError(f"jobs of kind {kind.name!r} cannot run in segments")
    return kind.segmented


def prepare(ctx: Context, job_id: str) -> None:
    """Claim the job, plan its segments and dispatch the first ones."""
    job = state.claim(ctx.db, job_id, WORKER_ID, "preparing")
    if job is None:
        return
    with ctx.db.transaction() as session:
        planned = plans.get_plan(session, job_id) is not None
    if not planned:
        _plan(ctx, job)
    state.set_stage(ctx.db, job_id, WORKER_ID, "animating")
    dispatch(ctx, job.user_id)
    maybe_join(ctx, job_id, job.priority)  # a job whose plan exists but whose join was lost


def _plan(ctx: Context, job: state.ClaimedJob) -> None:
    kind = kinds.get(job.kind)
    with tempfile.TemporaryDirectory(prefix="animatica-prepare-") as tmp:
        folder = Path(tmp)
        inputs = lifecycle.fetch_inputs(ctx.storage, job, kind, folder)
        watch = Watch(ctx.db, job.id, WORKER_ID, report=False)
        work = folder / "work"
        work.mkdir()
        plan = _segmented(kind).plan(
            ctx.settings,
            Execution(kind.name, inputs, work, job.engine, job.options),
            watch.on_progress,
            watch.should_cancel,
        )
        prepared_key = None
        if plan.prepared is not None:
            prepared_key = kinds.prepared_key(job.id)
            blob = folder / "prepared.bin"
            blob.write_bytes(plan.prepared)
            ctx.storage.put_file(prepared_key, blob)
    with ctx.db.transaction() as session:
        plans.create_plan(
            session,
            job_id=job.id,
            user_id=job.user_id,
            urgency=job.priority,
            frame_rate=plan.frame_rate,
            has_audio=plan.has_audio,
            total_frames=plan.total_frames,
            best_frame=plan.best_frame,
            parts=plan.parts,
            now=utcnow(),
            prepared_key=prepared_key,
        )


def run_segment(ctx: Context, job_id: str, index: int, worker: str = "") -> None:
    """Run one segment into its fixed storage key; a segment already done is not redone."""
    status, cancel = state.status(ctx.db, job_id)
    with ctx.db.transaction() as session:
        plan = plans.get_plan(session, job_id)
        part = plans.get_segment(session, job_id, index)
    if status != state.RUNNING or plan is None or part is None:
        if status in state.FINAL:
            with ctx.db.transaction() as session:
                plans.drop_unfinished(session, job_id)
        return
    if part.status != plans.DONE:
        if cancel:
            raise AnimaticaError(CANCELED)
        with ctx.db.transaction() as session:
            attempt = plans.start_attempt(session, job_id, index, worker or socket.gethostname())
        if attempt > ctx.settings.task_max_retries + 3:
            raise AnimaticaError(
                f"segment {index} stopped its worker {attempt - 1} times; the job was given up and "
                "your credit was returned."
            )
        job = state.load(ctx.db, job_id)
        assert job is not None
        kind = kinds.get(job.kind)
        watch = Watch(ctx.db, job_id, WORKER_ID, report=False)
        with tempfile.TemporaryDirectory(prefix="animatica-segment-") as tmp:
            folder = Path(tmp)
            inputs = lifecycle.fetch_inputs(ctx.storage, job, kind, folder)
            prepared = None
            if plan.prepared_key:
                prepared = folder / "prepared.bin"
                ctx.storage.get_file(plan.prepared_key, prepared)
            packed = folder / "segment.mkv"
            count = _segmented(kind).segment(
                ctx.settings,
                Execution(kind.name, inputs, packed, job.engine, job.options),
                plan,
                Segment(part.index, part.start, part.stop),
                prepared,
                watch.on_progress,
                watch.should_cancel,
            )
            ctx.storage.put_file(segment_key(job_id, index), packed)
        with ctx.db.transaction() as session:
            plans.finish_segment(session, job_id, index, count, utcnow())
            parts = plans.job_segments(session, job_id)
        done = sum(p.frames or 0 for p in parts if p.status == plans.DONE)
        total = plan.total_frames or sum(
            (p.frames or 0) if p.stop is None else p.stop - p.start for p in parts
        )
        percent = min(99.0, 100.0 * done / total) if total else 0.0
        state.report_progress(ctx.db, job_id, WORKER_ID, "animating", percent, None)
    dispatch(ctx, plan.user_id)
    maybe_join(ctx, job_id, plan.urgency)


def join(ctx: Context, job_id: str) -> None:
    """Join the segments, store the result and finish the job."""
    status, cancel = state.status(ctx.db, job_id)
    if status != state.RUNNING:
        return
    with ctx.db.transaction() as session:
        plan = plans.get_plan(session, job_id)
        parts = plans.job_segments(session, job_id)
    job = state.load(ctx.db, job_id)
    if plan is None or job is None or any(p.status != plans.DONE for p in parts):
        return
    if cancel:
        end(ctx, job_id, CANCELED, status=state.CANCELED)
        return
    state.report_progress(ctx.db, job_id, WORKER_ID, "joining", 99.0, None)
    kind = kinds.get(job.kind)
    with tempfile.TemporaryDirectory(prefix="animatica-join-") as tmp:
        folder = Path(tmp)
        files = []
        for part in parts:
            local = folder / f"{part.index:05d}.mkv"
            ctx.storage.get_file(segment_key(job_id, part.index), local)
            files.append(local)
        output = folder / kind.result
        result = _segmented(kind).join(
            ctx.settings,
            files,
            [p.frames for p in parts],
            plan,
            lambda slot: lifecycle.fetch_input(ctx.storage, job, slot, folder),
            output,
        )
        outcome = lifecycle.store_result(ctx.db, ctx.storage, job_id, kind, WORKER_ID, output, result)
    _delete_parts(ctx, job_id, len(parts), plan)
    dispatch(ctx, plan.user_id)
    log.info("job finished", extra={"job_id": job_id, "status": outcome})
