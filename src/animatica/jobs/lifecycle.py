"""The life of one job, written once for every kind and both runners.

1. A worker takes the job through `state` (``claim_next`` in the service's runner, ``claim`` on a
   Celery worker), which marks it running under the worker's id.
2. `run_job` fetches the kind's inputs into a temporary folder (remembering the names the user
   gave them, so a message about a file names it as they did), then runs the kind under a
   `Watch`: progress is written a few times a second at most, a cancel by the owner is noticed,
   and a job that overruns its time limit or stops reporting progress is stopped.
3. The result goes to ``jobs/<id>/<kind's result name>`` and `state.succeed` ends the job,
   consuming its credit. Anything else is `settle`'s: a bound that stopped it, its owner's
   cancel, the server stopping (back to the queue, credit kept), or an error, worded for the
   user by `messages.user_error`; every one of these returns the credit.

Only `state` writes a job's status and stage. Each of its transitions is conditional on the state
it leaves, in the same transaction as the credit's ledger row, so when two parties act on a job at
once (a cancel and the worker's finish, a redelivered Celery task and the first delivery) exactly
one transition happens and the credit moves once. The steps here may therefore run twice (Celery
delivers at least once): the result key is fixed, and a late duplicate finds the job ended and
leaves it alone.

How the kind runs is the executor's business: `ThreadExecutor` here (tests, embedding, Celery
workers) or `child.ProcessExecutor` (the service: long-lived child processes).
"""

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from animatica.db.session import Database
from animatica.errors import AnimaticaError
from animatica.jobs import kinds, state
from animatica.jobs.bounds import JobBounds
from animatica.jobs.kinds import Execution, JobKind
from animatica.jobs.messages import CANCELED, stall_message, time_limit_message, user_error
from animatica.settings import Settings
from animatica.storage.base import Storage

log = logging.getLogger("animatica.jobs")
PROGRESS_INTERVAL = 0.5  # seconds between two progress writes (or cancel checks) of one job

# (execution, on_progress, should_cancel) -> the kind's result
Executor = Callable[[Execution, Callable[[Any], None], Callable[[], bool]], Any]
# What ends a job that did not succeed: (message for the user, final status).
End = Callable[[str, str], Any]


class ThreadExecutor:
    """Runs a job's kind in the calling thread (Celery workers, embedding, tests; the service
    uses child processes, see `animatica.jobs.child`, so jobs never compete with requests for the GIL).

    ``set_threads``: on the first job, share the cores between ``worker_concurrency`` jobs (for a
    process whose start-up did not set torch's threads itself).
    """

    def __init__(self, settings: Settings, *, set_threads: bool = True) -> None:
        self._settings = settings
        self._set_threads = set_threads
        self._lock = threading.Lock()

    def __call__(
        self, execution: Execution, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        kind = kinds.get(execution.kind)
        fields = kind.request(self._settings, execution)
        with self._lock:
            if self._set_threads:
                from animatica.device import threads_per_job, use_threads

                use_threads(threads_per_job(self._settings.torch_threads, self._settings.worker_concurrency))
                self._set_threads = False
        return kind.run(fields, on_progress, should_cancel)


# --- watching a running job ---------------------------------------------------------------------


class Watch:
    """Watches one running job: writes its progress (throttled) and answers the executor's "should I
    stop?", which is yes when its owner canceled it, the worker is stopping (``abort``), or it
    overran a bound (``stopped_for`` then holds the message for the user).

    The executor asks several times a second whatever the job does (the process executor asks from
    the parent, so a child stuck in native code is noticed too); the bounds are checked then. The
    stall bound counts from the job's first report (a child reports as soon as it takes the job,
    which a fresh child on a busy machine does only after seconds of loading); the time limit from
    the start.
    Without ``bounds`` nothing is enforced here (a Celery segment is bounded by its task's limit).
    With ``report`` False progress is not written, only the heartbeat: the segments of one job run
    side by side, and their progress is counted when each one ends.
    """

    def __init__(
        self,
        db: Database,
        job_id: str,
        worker_id: str,
        *,
        bounds: JobBounds | None = None,
        size: int | None = None,
        abort: threading.Event | None = None,
        cancel: threading.Event | None = None,
        report: bool = True,
    ) -> None:
        self.db = db
        self.job_id = job_id
        self.worker_id = worker_id
        self.cancel = cancel or threading.Event()
        self.abort = abort or threading.Event()
        self.bounds = bounds
        self.report = report
        self.stopped_for: str | None = None
        self.limit = bounds.time_limit(size) if bounds is not None else None
        self._sized = False
        self._started = time.monotonic()
        self._last_report: float | None = None  # the stall bound counts from the first report
        self._last_write = 0.0
        self._last_stage = ""
        self._last_check = 0.0

    def on_progress(self, progress: Any) -> None:
        now = time.monotonic()
        self._last_report = now
        total = getattr(progress, "total", None)
        if total and not self._sized and self.bounds is not None:
            self._sized = True  # the job's real size is known: its limit follows it
            self.limit = self.bounds.time_limit(int(total))
        if not self.report:
            self._check(now)
            return
        stage = str(getattr(progress, "stage", "running"))
        if stage == self._last_stage and now - self._last_write < PROGRESS_INTERVAL:
            return
        done = int(getattr(progress, "done", 0) or 0)
        percent = min(99.0, 100.0 * done / total) if total else 0.0
        eta = getattr(progress, "eta_seconds", None)
        if state.report_progress(self.db, self.job_id, self.worker_id, stage, percent, eta):
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
        self._check(now)
        return self.cancel.is_set()

    def _check(self, now: float) -> None:
        """Every PROGRESS_INTERVAL: keep the heartbeat fresh (when progress is not written) and
        look for a cancel."""
        if now - self._last_check < PROGRESS_INTERVAL:
            return
        self._last_check = now
        if not self.report:
            state.heartbeat(self.db, [self.job_id], self.worker_id)
        if state.cancel_requested(self.db, self.job_id):
            self.cancel.set()

    def _overrun(self, now: float) -> str | None:
        if self.limit is not None and now - self._started > self.limit:
            return time_limit_message(self.limit)
        stall = self.bounds.stall_seconds if self.bounds is not None else 0.0
        if stall > 0 and self._last_report is not None and now - self._last_report > stall:
            return stall_message(stall)
        return None


# --- the steps ----------------------------------------------------------------------------------


def input_labels(job: state.ClaimedJob, folder: Path) -> dict[str, str]:
    """Local path -> the name the user gave the file, for messages about the job's own files."""
    return {
        str(folder / Path(key).name): job.names.get(slot) or Path(key).name
        for slot, key in job.inputs.items()
    }


def fetch_input(storage: Storage, job: state.ClaimedJob, slot: str, folder: Path) -> Path:
    """One stored input of the job, copied into ``folder`` under its stored name."""
    key = job.inputs.get(slot)
    if not key:
        raise AnimaticaError(f"the job has no {slot} file (it may have expired); your credit was returned.")
    local = folder / Path(key).name
    storage.get_file(key, local)
    return local


def fetch_inputs(storage: Storage, job: state.ClaimedJob, kind: JobKind, folder: Path) -> dict[str, Path]:
    """The kind's stored inputs, copied into ``folder``: slot -> local file (its optional slots only
    where the job has them)."""
    slots = [*kind.inputs, *(slot for slot in kind.optional_inputs if slot in job.inputs)]
    return {slot: fetch_input(storage, job, slot, folder) for slot in slots}


def store_result(
    db: Database, storage: Storage, job_id: str, kind: JobKind, worker_id: str, output: Path, result: Any
) -> str:
    """Store the result file and end the job as succeeded; "lost" when someone else ended it first."""
    key = kinds.result_key(job_id, kind)
    storage.put_file(key, output)
    done = state.succeed(
        db,
        job_id,
        worker_id,
        key,
        output.stat().st_size,
        int(getattr(result, "frames", 0) or 0),
        float(getattr(result, "fps", 0.0) or 0.0),
        list(getattr(result, "notes", []) or []),
    )
    if done:
        return state.SUCCEEDED
    if state.status(db, job_id)[0] != state.SUCCEEDED:
        storage.delete(key)  # canceled or recovered meanwhile; a duplicate run of a succeeded job keeps it
    return "lost"


def settle(
    db: Database,
    job_id: str,
    worker_id: str,
    error: BaseException,
    *,
    labels: Mapping[str, str] | None = None,
    stopped_for: str | None = None,
    aborting: bool = False,
    overrun: Callable[[BaseException], str | None] | None = None,
    retry: Callable[[BaseException], None] | None = None,
    end: End | None = None,
) -> str:
    """End a job that did not succeed, by what stopped it; returns the job's status.

    In order: a bound (``stopped_for``, or ``overrun`` recognising a time-limit error), its owner's
    cancel, the worker stopping (``aborting``: back to the queue, the attempt not counted), an
    error about the job's input (its message, paths reduced to file names), and anything else,
    which ``retry`` may take (by raising) before the job fails with a message that gives nothing
    away. ``end`` fails or cancels the job (default: `state.fail`).
    """

    def finish(message: str, status: str) -> str:
        if end is not None:
            end(message, status)
        else:
            state.fail(db, job_id, worker_id, message, status=status)
        return status

    limit = stopped_for or (overrun(error) if overrun is not None else None)
    if limit is not None:
        log.warning("job stopped: %s", limit, extra={"job_id": job_id})
        return finish(limit, state.FAILED)
    if state.cancel_requested(db, job_id):
        return finish(CANCELED, state.CANCELED)
    if aborting:
        # Stopped by the shutdown, not by anything the job did: it runs again after the restart.
        state.requeue(db, job_id, worker_id)
        return state.QUEUED
    if not isinstance(error, AnimaticaError):
        if retry is not None:
            retry(error)
        log.error("job crashed", exc_info=error, extra={"job_id": job_id})
    return finish(user_error(error, labels), state.FAILED)


def run_job(
    db: Database,
    storage: Storage,
    executor: Executor,
    job: state.ClaimedJob,
    worker_id: str,
    watch: Watch,
    *,
    aborting: Callable[[], bool] = lambda: False,
    overrun: Callable[[BaseException], str | None] | None = None,
    retry: Callable[[BaseException], None] | None = None,
) -> str:
    """Run a claimed job whole, from its stored inputs to its final state; returns that state
    (or ``queued`` when it went back to the queue, ``lost`` when another party ended it)."""
    with tempfile.TemporaryDirectory(prefix="animatica-job-") as tmp:
        folder = Path(tmp)
        labels = input_labels(job, folder)
        try:
            kind = kinds.get(job.kind)
            inputs = fetch_inputs(storage, job, kind, folder)
            output = folder / kind.result
            result = executor(
                Execution(kind.name, inputs, output, job.engine, job.options),
                watch.on_progress,
                watch.should_cancel,
            )
            if state.cancel_requested(db, job.id):  # asked while the last of the work was written
                raise AnimaticaError(CANCELED)
            return store_result(db, storage, job.id, kind, worker_id, output, result)
        except Exception as error:
            return settle(
                db,
                job.id,
                worker_id,
                error,
                labels=labels,
                stopped_for=watch.stopped_for,
                aborting=aborting(),
                overrun=overrun,
                retry=retry,
            )


def announce(settings: Settings, db: Database, job_id: str, urgency: int, notify: Callable[[], None]) -> None:
    """Tell the workers a job was queued: the broker's when one is set (the reconciler sends again
    what the broker missed), else the local runner (``notify``)."""
    if settings.broker_url:
        from animatica.jobs.distributed.dispatch import enqueue

        enqueue(settings, db, job_id, urgency)
    else:
        notify()
