"""The in-process job runner: a few worker threads plus one housekeeping thread.

Workers claim jobs from the database (so several processes could share one PostgreSQL),
animate them, and persist progress at most a few times a second. The housekeeping thread keeps
heartbeats fresh, recovers jobs abandoned by a crashed or restarted process, and applies the
retention policy.

A job is watched while it runs: one that outlives its time limit, or reports no progress for
``job_stall_seconds``, is stopped (the process executor kills its child when it does not stop by
itself), failed with a message that says why, and its credit returned. When the server stops, a
running job gets ``shutdown_grace_seconds`` to finish; after that it goes back to the queue with
its credit still reserved, and the next start animates it again.
"""

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animatica.db.session import Database
from animatica.errors import AnimaticaError
from animatica.jobs import store
from animatica.jobs.bounds import JobBounds
from animatica.jobs.execute import Execution, Executor
from animatica.jobs.messages import CANCELED, stall_message, time_limit_message, user_error
from animatica.jobs.retention import purge_expired
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.jobs")
PROGRESS_INTERVAL = 0.5
RETENTION_INTERVAL = 3600.0
STOP_SECONDS = 10.0  # after the grace: how long stopped jobs may take to be handed back


class JobRunner:
    def __init__(
        self,
        db: Database,
        storage: Storage,
        settings: Settings,
        executor: Executor,
        parallel_limits: dict[str, int],
        on_finish: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.executor = executor
        self.parallel_limits = parallel_limits
        self.on_finish = on_finish
        self.bounds = JobBounds.from_settings(settings)
        self.worker_id = store.new_worker_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._abort = threading.Event()  # the grace is over: running jobs stop and go back to the queue
        self._workers: list[threading.Thread] = []
        self._keeper: threading.Thread | None = None
        self._active: dict[str, threading.Event] = {}
        self._active_lock = threading.Lock()
        self._last_retention = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._keeper is not None:
            return
        self._stop.clear()
        self._abort.clear()
        self.housekeeping()
        # In distributed mode (a broker is set) Celery workers animate; this process only keeps house.
        local_workers = 0 if self.settings.broker_url else self.settings.worker_concurrency
        for index in range(local_workers):
            thread = threading.Thread(target=self._work, name=f"animatica-worker-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)
        self._keeper = threading.Thread(target=self._keep, name="animatica-housekeeping", daemon=True)
        self._keeper.start()

    def stop(self, grace: float | None = None, release: Callable[[], None] | None = None) -> None:
        """Stop taking jobs; let running ones finish within ``grace`` seconds, then hand them back.

        ``release`` is called when the grace is over and jobs still run, to make them end now (the
        process executor's ``close``, which stops their children). Without it, jobs are asked to
        stop and end at their next progress check. Either way a job stopped here goes back to the
        queue, its credit still reserved and the attempt not counted.
        """
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + grace
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._workers):
            self._abort.set()
            with self._active_lock:
                running = list(self._active)
                for flag in self._active.values():
                    flag.set()
            if running:
                log.warning("stopping running jobs to hand them back to the queue", extra={"jobs": running})
            if release is not None:
                release()
            for thread in self._workers:
                thread.join(STOP_SECONDS)
        if self._keeper is not None:
            self._keeper.join(STOP_SECONDS)
        self._workers.clear()
        self._keeper = None

    @property
    def stopping(self) -> bool:
        """True once ``stop`` has begun: no job is taken any more."""
        return self._stop.is_set()

    def notify(self) -> None:
        """A job was queued: wake an idle worker now instead of at the next poll."""
        self._wake.set()

    def cancel_local(self, job_id: str) -> None:
        with self._active_lock:
            flag = self._active.get(job_id)
        if flag is not None:
            flag.set()

    # --- housekeeping ----------------------------------------------------------------------
    def housekeeping(self) -> None:
        with self._active_lock:
            active = list(self._active)
        store.heartbeat(self.db, active, self.worker_id)
        if self.settings.broker_url:
            requeued, failed = [], []  # Celery redelivers lost tasks; its jobs are not abandoned
        else:
            requeued, failed = store.recover_abandoned(
                self.db,
                self.settings.job_stale_seconds,
                self.settings.job_max_attempts,
                dead_workers=self._dead_workers(),
            )
        for job_id in requeued:
            log.warning("re-queued abandoned job", extra={"job_id": job_id})
        for job_id in failed:
            log.warning("failed abandoned job and returned its credit", extra={"job_id": job_id})
        if requeued:
            self._wake.set()
        now = time.monotonic()
        if now - self._last_retention >= RETENTION_INTERVAL:
            self._last_retention = now
            purge_expired(self.db, self.storage, self.settings)

    def _dead_workers(self) -> set[str]:
        """Workers on this host whose process is gone: their jobs need no stale timeout."""
        host = self.worker_id.split(":", 1)[0]
        dead: set[str] = set()
        for worker in store.running_worker_ids(self.db):
            parts = worker.split(":")
            if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
                continue
            pid = int(parts[1])
            if pid != os.getpid() and not _process_alive(pid):
                dead.add(worker)
        return dead

    def _keep(self) -> None:
        while not self._stop.wait(self.settings.job_heartbeat_seconds):
            try:
                self.housekeeping()
            except Exception:
                log.exception("housekeeping failed")

    # --- work ------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = store.claim_next(self.db, self.worker_id, self.parallel_limits)
            except Exception:
                log.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()
                continue
            if self._stop.is_set():  # claimed while the server began to stop: not ours to start
                store.requeue(self.db, job.id, self.worker_id)
                return
            self._wake.set()  # another idle worker may take the next queued job
            self.run(job)

    def run(self, job: store.ClaimedJob) -> str:
        """Animate one claimed job to its final state (or back to the queue); returns that state."""
        cancel = threading.Event()
        with self._active_lock:
            self._active[job.id] = cancel
        started = time.monotonic()
        try:
            status = self._run(job, _Watch(self, job, cancel))
        finally:
            with self._active_lock:
                self._active.pop(job.id, None)
        if self.on_finish is not None:
            self.on_finish(job.engine, status, time.monotonic() - started)
        log.info("job finished", extra={"job_id": job.id, "status": status})
        return status

    def _run(self, job: store.ClaimedJob, watch: "_Watch") -> str:
        with tempfile.TemporaryDirectory(prefix="animatica-job-") as tmp:
            folder = Path(tmp)
            source = folder / Path(job.source_key).name
            driving = folder / Path(job.driving_key).name
            # Errors about the job's own files name them as the user did.
            labels = {
                str(source): job.source_name or source.name,
                str(driving): job.driving_name or driving.name,
            }
            try:
                self.storage.get_file(job.source_key, source)
                self.storage.get_file(job.driving_key, driving)
                output = folder / "result.mp4"
                result = self.executor(
                    Execution(source, driving, output, job.engine, job.options),
                    watch.on_progress,
                    watch.should_cancel,
                )
                if _cancel_requested(self.db, job.id):  # asked while the last frames were written
                    return self._settle(job, watch, AnimaticaError(CANCELED), labels)
                return self._store_result(job, output, result)
            except Exception as error:
                return self._settle(job, watch, error, labels)

    def _store_result(self, job: store.ClaimedJob, output: Path, result: Any) -> str:
        key = f"jobs/{job.id}/result.mp4"
        self.storage.put_file(key, output)
        done = store.succeed(
            self.db,
            job.id,
            self.worker_id,
            key,
            output.stat().st_size,
            int(getattr(result, "frames", 0)),
            float(getattr(result, "fps", 0.0)),
            list(getattr(result, "notes", [])),
        )
        if not done:
            # Someone else finished or recovered the job meanwhile; keep their outcome.
            self.storage.delete(key)
            return "lost"
        return store.SUCCEEDED

    def _settle(
        self, job: store.ClaimedJob, watch: "_Watch", error: Exception, labels: dict[str, str]
    ) -> str:
        """End a job that did not succeed, by what stopped it: a limit, its owner, the shutdown, or
        an error of its own."""
        if watch.stopped_for is not None:
            log.warning("job stopped: %s", watch.stopped_for, extra={"job_id": job.id})
            store.fail(self.db, job.id, self.worker_id, watch.stopped_for)
            return store.FAILED
        if _cancel_requested(self.db, job.id):
            store.fail(self.db, job.id, self.worker_id, CANCELED, status=store.CANCELED)
            return store.CANCELED
        if self._abort.is_set():
            # Stopped by the shutdown, not by anything the job did: it runs again after the restart.
            store.requeue(self.db, job.id, self.worker_id)
            return store.QUEUED
        if not isinstance(error, AnimaticaError):
            log.error("job crashed", exc_info=error, extra={"job_id": job.id})
        store.fail(self.db, job.id, self.worker_id, user_error(error, labels))
        return store.FAILED


def _cancel_requested(db: Database, job_id: str) -> bool:
    from sqlalchemy import select

    from animatica.db.models import Job

    with db.read() as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


class _Watch:
    """Watches one running job: writes its progress (throttled) and answers the executor's "should I
    stop?", which is yes when its owner canceled it, the server is stopping, or it overran a bound.

    The executor asks several times a second whatever the job does (the process executor asks from
    the parent, so a child stuck in native code is noticed too); the bounds are checked then.
    """

    def __init__(self, runner: JobRunner, job: store.ClaimedJob, cancel: threading.Event) -> None:
        self.db = runner.db
        self.job_id = job.id
        self.worker_id = runner.worker_id
        self.cancel = cancel
        self.abort = runner._abort
        self.bounds = runner.bounds
        self.stopped_for: str | None = None  # the user's message when a bound stopped the job
        # Until the pipeline reports the driving video's length, the plan's limit for it bounds it.
        max_frames = job.options.get("max_frames")
        self.limit = self.bounds.time_limit(int(max_frames) if max_frames else None)
        self._sized = False
        self._started = self._last_report = time.monotonic()
        self._last_write = 0.0
        self._last_stage = ""
        self._last_check = 0.0

    def on_progress(self, progress: Any) -> None:
        now = time.monotonic()
        self._last_report = now
        total = getattr(progress, "total", None)
        if total and not self._sized:
            self._sized = True
            self.limit = self.bounds.time_limit(int(total))
        stage = str(getattr(progress, "stage", "running"))
        if stage == self._last_stage and now - self._last_write < PROGRESS_INTERVAL:
            return
        done = int(getattr(progress, "done", 0) or 0)
        percent = min(99.0, 100.0 * done / total) if total else 0.0
        eta = getattr(progress, "eta_seconds", None)
        if store.report_progress(self.db, self.job_id, self.worker_id, stage, percent, eta):
            self.cancel.set()
        self._last_write = self._last_check = now
        self._last_stage = stage

    def should_cancel(self) -> bool:
        if self.cancel.is_set():
            return True
        if self.abort.is_set():
            self.cancel.set()
            return True
        now = time.monotonic()
        overrun = self._overrun(now)
        if overrun is not None:
            self.stopped_for = overrun
            self.cancel.set()
            return True
        if now - self._last_check >= PROGRESS_INTERVAL:
            self._last_check = now
            if _cancel_requested(self.db, self.job_id):
                self.cancel.set()
        return self.cancel.is_set()

    def _overrun(self, now: float) -> str | None:
        if self.limit is not None and now - self._started > self.limit:
            return time_limit_message(self.limit)
        stall = self.bounds.stall_seconds
        if stall > 0 and now - self._last_report > stall:
            return stall_message(stall)
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
