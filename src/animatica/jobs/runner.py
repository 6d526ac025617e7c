"""The in-process job runner: a few worker threads plus one housekeeping thread.

Workers claim jobs from the database (so several processes could share one PostgreSQL),
animate them, and persist progress at most a few times a second. The housekeeping thread keeps
heartbeats fresh, recovers jobs abandoned by a crashed or restarted process, and applies the
retention policy.
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
from animatica.jobs.execute import Execution, Executor
from animatica.jobs.retention import purge_expired
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.jobs")
INTERNAL_ERROR = "The animation failed because of an internal error; your credit was returned."
PROGRESS_INTERVAL = 0.5
RETENTION_INTERVAL = 3600.0


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
        self.worker_id = store.new_worker_id()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._active: dict[str, threading.Event] = {}
        self._active_lock = threading.Lock()
        self._last_retention = 0.0

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._threads:
            return
        self._stop.clear()
        self.housekeeping()
        # In distributed mode (a broker is set) Celery workers animate; this process only keeps house.
        local_workers = 0 if self.settings.broker_url else self.settings.worker_concurrency
        for index in range(local_workers):
            thread = threading.Thread(target=self._work, name=f"animatica-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._keep, name="animatica-housekeeping", daemon=True)
        keeper.start()
        self._threads.append(keeper)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask running jobs to stop, then wait; interrupted jobs end canceled or get recovered."""
        self._stop.set()
        self._wake.set()
        with self._active_lock:
            for flag in self._active.values():
                flag.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

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
            self._wake.set()  # another idle worker may take the next queued job
            self.run(job)

    def run(self, job: store.ClaimedJob) -> str:
        """Animate one claimed job to its final state; returns that state."""
        cancel = threading.Event()
        with self._active_lock:
            self._active[job.id] = cancel
        started = time.monotonic()
        try:
            status = self._run(job, cancel)
        finally:
            with self._active_lock:
                self._active.pop(job.id, None)
        if self.on_finish is not None:
            self.on_finish(job.engine, status, time.monotonic() - started)
        log.info("job finished", extra={"job_id": job.id, "status": status})
        return status

    def _run(self, job: store.ClaimedJob, cancel: threading.Event) -> str:
        reporter = _ProgressReporter(self.db, job.id, self.worker_id, cancel)
        with tempfile.TemporaryDirectory(prefix="animatica-job-") as tmp:
            folder = Path(tmp)
            try:
                source = folder / Path(job.source_key).name
                driving = folder / Path(job.driving_key).name
                self.storage.get_file(job.source_key, source)
                self.storage.get_file(job.driving_key, driving)
                output = folder / "result.mp4"
                result = self.executor(
                    Execution(source, driving, output, job.engine, job.options),
                    reporter.on_progress,
                    reporter.should_cancel,
                )
                if reporter.should_cancel(force=True):
                    return self._cancelled(job)
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
                )
                if not done:
                    # Someone else finished or recovered the job meanwhile; keep their outcome.
                    self.storage.delete(key)
                    return "lost"
                return store.SUCCEEDED
            except AnimaticaError as error:
                if reporter.should_cancel(force=True):
                    return self._cancelled(job)
                store.fail(self.db, job.id, self.worker_id, str(error))
                return store.FAILED
            except Exception:
                log.exception("job crashed", extra={"job_id": job.id})
                store.fail(self.db, job.id, self.worker_id, INTERNAL_ERROR)
                return store.FAILED

    def _cancelled(self, job: store.ClaimedJob) -> str:
        if self._stop.is_set() and not _cancel_requested(self.db, job.id):
            # Shutting down, not a user's cancel: hand the job back to the queue.
            store.requeue(self.db, job.id, self.worker_id)
            return store.QUEUED
        store.fail(self.db, job.id, self.worker_id, "Canceled by the user.", status=store.CANCELED)
        return store.CANCELED


def _cancel_requested(db: Database, job_id: str) -> bool:
    from sqlalchemy import select

    from animatica.db.models import Job

    with db.read() as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


class _ProgressReporter:
    """Turns pipeline progress into throttled database writes and answers cancel checks."""

    def __init__(self, db: Database, job_id: str, worker_id: str, cancel: threading.Event) -> None:
        self.db = db
        self.job_id = job_id
        self.worker_id = worker_id
        self.cancel = cancel
        self._last_write = 0.0
        self._last_stage = ""
        self._last_check = 0.0

    def on_progress(self, progress: Any) -> None:
        now = time.monotonic()
        stage = str(getattr(progress, "stage", "running"))
        if stage == self._last_stage and now - self._last_write < PROGRESS_INTERVAL:
            return
        done = int(getattr(progress, "done", 0) or 0)
        total = getattr(progress, "total", None)
        percent = min(99.0, 100.0 * done / total) if total else 0.0
        eta = getattr(progress, "eta_seconds", None)
        if store.report_progress(self.db, self.job_id, self.worker_id, stage, percent, eta):
            self.cancel.set()
        self._last_write = self._last_check = now
        self._last_stage = stage

    def should_cancel(self, force: bool = False) -> bool:
        if self.cancel.is_set():
            return True
        now = time.monotonic()
        if force or now - self._last_check >= PROGRESS_INTERVAL:
            self._last_check = now
            if _cancel_requested(self.db, self.job_id):
                self.cancel.set()
        return self.cancel.is_set()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
