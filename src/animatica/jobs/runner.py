"""The in-process job runner: a few worker threads plus one housekeeping thread.

Workers claim jobs from the database (so several processes could share one PostgreSQL) and run
each through `lifecycle.run_job`, whatever its kind. The housekeeping thread keeps
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
import threading
import time
from collections.abc import Callable

from animatica.db.session import Database
from animatica.errors import AnimaticaError
from animatica.jobs import kinds, lifecycle, state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.lifecycle import Executor, Watch
from animatica.jobs.retention import purge_expired
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.jobs")
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
        self.worker_id = state.new_worker_id()
        kinds.import_modules(settings.job_kinds)
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
        state.heartbeat(self.db, active, self.worker_id)
        if self.settings.broker_url:
            requeued, failed = [], []  # Celery redelivers lost tasks; its jobs are not abandoned
        else:
            requeued, failed = state.recover_abandoned(
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
        for worker in state.running_worker_ids(self.db):
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
                job = state.claim_next(self.db, self.worker_id, self.parallel_limits)
            except Exception:
                log.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(self.settings.job_poll_seconds)
                self._wake.clear()
                continue
            if self._stop.is_set():  # claimed while the server began to stop: not ours to start
                state.requeue(self.db, job.id, self.worker_id)
                return
            self._wake.set()  # another idle worker may take the next queued job
            self.run(job)

    def run(self, job: state.ClaimedJob) -> str:
        """Run one claimed job to its final state (or back to the queue); returns that state."""
        cancel = threading.Event()
        with self._active_lock:
            self._active[job.id] = cancel
        started = time.monotonic()
        try:
            size = _size(job)
            watch = Watch(
                self.db,
                job.id,
                self.worker_id,
                bounds=self.bounds.for_engine(job.engine),
                size=size,
                abort=self._abort,
                cancel=cancel,
            )
            status = lifecycle.run_job(
                self.db, self.storage, self.executor, job, self.worker_id, watch, aborting=self._abort.is_set
            )
        finally:
            with self._active_lock:
                self._active.pop(job.id, None)
        if self.on_finish is not None:
            self.on_finish(job.engine, status, time.monotonic() - started)
        log.info("job finished", extra={"job_id": job.id, "status": status})
        return status


def _size(job: state.ClaimedJob) -> int | None:
    """The job's size before it runs, for its time limit; unknown for a kind this process lacks
    (the run then fails with a message saying so)."""
    try:
        return kinds.get(job.kind).size(job.options)
    except AnimaticaError:
        return None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
