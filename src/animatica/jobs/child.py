"""Jobs in long-lived child processes, so the web server never waits on them.

Animating holds the GIL and the CPU for minutes; run in a thread of the web process it would make
status polls take seconds. Here every job that runs at the same time has its own child process,
spawned on first use and kept, so the engine's model cache stays warm between jobs. A child that
dies, is stopped for a limit or runs out of memory fails only its own job; the next job gets a
fresh child. Children serve every kind of job (`animatica.jobs.kinds`): they import the kinds'
modules when they start and look each job's kind up by name.

Each child runs under an address-space cap (``job_memory_mb``; not on CUDA machines, where the
driver maps far more than it uses), so an animation that outgrows it fails with a MemoryError in the
child rather than exhausting the machine; the next job gets a fresh child.

The wire protocol is one request down the pipe, the job's kind name and its request as plain data
(built by the kind in the parent, so a bad option fails before a child is involved), then progress
messages and exactly one final message back. Cancellation goes through a shared event that the
job polls; a child that does not answer it within ``cancel_grace`` seconds is killed.
"""

import contextlib
import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Event
from typing import Any

from animatica.errors import AnimaticaError
from animatica.jobs import kinds
from animatica.jobs.bounds import cap_memory
from animatica.jobs.kinds import Execution
from animatica.jobs.messages import is_out_of_memory, memory_message
from animatica.processes import leave_with_parent
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")

POLL_SECONDS = 0.1  # how often the parent asks should_cancel() and notices a dead child
CANCEL_GRACE_SECONDS = 10.0  # a child that ignores a cancel this long is killed
NICENESS = 19  # below the web server, so requests stay fast while a job animates
STOP_SECONDS = 5.0

PROGRESS, DONE, FAILED, CRASHED, NO_MEMORY = "progress", "done", "failed", "crashed", "no-memory"

# What a child does with every request instead of its kind's ``run`` (tests):
# (request fields, on_progress, should_cancel) -> result.
Work = Callable[[dict[str, Any], Callable[[Any], None], Callable[[], bool]], Any]


class ChildDied(RuntimeError):
    """The child ended in the middle of a job (killed, out of memory, a crash in native code)."""


class JobOutOfMemory(AnimaticaError):
    """The job needed more memory than its process may have; the message is meant for the user."""


@dataclass(frozen=True)
class Started:
    """The first report of every job: the child has taken it. A fresh child reads its first job only
    after loading torch, which on a busy machine takes seconds; the job's stall bound counts from
    here, not from the spawn."""

    stage: str = "starting"
    done: int = 0
    total: int | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True)
class ChildSetup:
    """How a child sets itself up once: plain data, sent when it is spawned."""

    torch_threads: int  # the setting; 0 shares the cores between ``jobs_at_once`` jobs
    jobs_at_once: int
    memory_mb: int
    kind_modules: str  # the ``job_kinds`` setting
    work: Work | None  # None: each job's kind runs it


# --- the child side -------------------------------------------------------------------------


def _child_main(conn: Connection, cancel: Event, setup: ChildSetup, parent: int) -> None:
    """Serve job requests until the pipe closes or the parent is gone.

    Ctrl-C reaches the whole process group and systemd's stop the whole cgroup: the parent decides
    what becomes of the job (back to the queue, usually), so the child ignores both signals and is
    only ever stopped by its parent, with SIGKILL.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(NICENESS)
    leave_with_parent(parent)  # a child mid-job never reads its pipe, so it watches for an orphaning

    import torch

    from animatica.device import threads_per_job, use_threads

    if not torch.cuda.is_available():  # CUDA maps far more address space than it uses: no cap there
        cap_memory(setup.memory_mb)
    use_threads(threads_per_job(setup.torch_threads, setup.jobs_at_once))
    kinds.import_modules(setup.kind_modules)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        kind_name, fields = request
        conn.send((PROGRESS, Started()))
        try:
            work = setup.work or kinds.get(kind_name).run
            result = work(fields, lambda progress: conn.send((PROGRESS, progress)), cancel.is_set)
        except AnimaticaError as error:
            conn.send((FAILED, (type(error).__module__, type(error).__qualname__, str(error))))
        except Exception as error:
            if is_out_of_memory(error):
                conn.send((NO_MEMORY, None))
            else:
                conn.send((CRASHED, "".join(traceback.format_exception(error))))
        else:
            conn.send((DONE, result))


# --- the parent side ------------------------------------------------------------------------


def _rebuild(module: str, name: str, message: str) -> AnimaticaError:
    """The child's error as the same class, so the runner treats it as if raised in-process."""
    try:
        cls = getattr(importlib.import_module(module), name)
        if isinstance(cls, type) and issubclass(cls, AnimaticaError):
            return cls(message)
    except Exception:
        log.warning("could not rebuild %s.%s from the animation process", module, name)
    return AnimaticaError(message)


class _Child:
    """One child process and its pipe; `reusable` is False once its state is in doubt.

    Only the thread that runs a job waits on the child's process, so a process is never reaped
    twice (a second waiter could then signal a recycled pid).
    """

    def __init__(self, context: SpawnContext, setup: ChildSetup) -> None:
        self.conn, child_end = context.Pipe()
        self.cancel = context.Event()
        self.memory_mb = setup.memory_mb
        self.process = context.Process(
            target=_child_main,
            args=(child_end, self.cancel, setup, os.getpid()),
            name="animatica-animator",
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.reusable = True

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def run(
        self,
        request: tuple[str, dict[str, Any]],
        on_progress: Callable[[Any], None],
        should_cancel: Callable[[], bool],
        cancel_grace: float,
        closing: threading.Event,
    ) -> Any:
        self.cancel.clear()
        self.reusable = False  # until the final reply is read: a reply may still be in the pipe
        try:
            self.conn.send(request)
        except OSError as error:
            raise ChildDied("The animation process is gone; the job could not be started.") from error
        cancelled_at: float | None = None
        next_check = 0.0
        while True:
            ready = wait([self.conn, self.process.sentinel], POLL_SECONDS)
            if self.conn in ready:  # read before judging the sentinel: a last reply still counts
                try:
                    kind, payload = self.conn.recv()
                except (EOFError, OSError):
                    raise self._died() from None
                if kind != PROGRESS:
                    return self._answer(kind, payload)
                on_progress(payload)
            elif ready:
                raise self._died()
            if closing.is_set():
                self.stop_now()
                raise ChildDied("The animation process was stopped because the server is stopping.")
            now = time.monotonic()
            if cancelled_at is None and now >= next_check:
                next_check = now + POLL_SECONDS
                if should_cancel():
                    self.cancel.set()
                    cancelled_at = now
            elif cancelled_at is not None and now - cancelled_at > cancel_grace:
                self.stop_now()
                raise AnimaticaError("The animation was canceled.")

    def _answer(self, kind: str, payload: Any) -> Any:
        if kind == DONE:
            self.reusable = True
            return payload
        if kind == FAILED:
            self.reusable = True
            raise _rebuild(*payload)
        if kind == NO_MEMORY:
            # Left to the allocator's mercy after a failed allocation: a fresh child takes the next job.
            raise JobOutOfMemory(memory_message(self.memory_mb or None))
        raise RuntimeError(f"The animation process failed:\n{payload}")

    def _died(self) -> ChildDied:
        self.process.join(STOP_SECONDS)
        return ChildDied(
            f"The animation process ended in the middle of a job (exit code {self.process.exitcode})."
        )

    def stop(self) -> None:
        """Ask an idle child to leave; stop it if it does not."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(STOP_SECONDS)
        self.stop_now()

    def stop_now(self) -> None:
        """Kill the child and wait until it is gone. It keeps nothing worth a gentler end: its output
        goes to the job's folder, which the runner removes."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_SECONDS)
        self.conn.close()


class ProcessExecutor:
    """The service's executor: same call shape as `lifecycle.ThreadExecutor`, jobs in child processes.

    ``work``, when given, replaces every kind's ``run`` in the children (tests give a function of
    their own, which must be importable by name in a fresh interpreter).
    """

    def __init__(
        self, settings: Settings, *, work: Work | None = None, cancel_grace: float = CANCEL_GRACE_SECONDS
    ) -> None:
        self._settings = settings
        self._work = work
        self._cancel_grace = cancel_grace
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def __call__(
        self, execution: Execution, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        kind = kinds.get(execution.kind)
        fields = kind.request(self._settings, execution)  # a bad option fails before any child starts
        child = self._checkout()
        try:
            return child.run(
                (kind.name, fields), on_progress, should_cancel, self._cancel_grace, self._closing
            )
        finally:
            self._checkin(child)

    def pids(self) -> list[int]:
        """Process ids of the live children (for operators, and for tests that kill one)."""
        with self._lock:
            children = [*self._idle, *self._busy]
        return [child.process.pid for child in children if child.process.pid and child.alive]

    def close(self, timeout: float = 2 * STOP_SECONDS) -> None:
        """Stop every child and wait until they are gone; a job still running fails as if its child had
        died (the runner, when it is stopping, hands such a job back to the queue)."""
        self._closing.set()
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        for child in idle:
            child.stop()
        # A busy child is stopped by the thread running its job, which notices `_closing` within a
        # poll; wait for those threads, and kill whatever a stuck one still holds.
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                busy = list(self._busy)
            if not busy or time.monotonic() >= deadline:
                break
            time.sleep(POLL_SECONDS)
        for child in busy:
            with contextlib.suppress(OSError):
                child.process.kill()

    def _checkout(self) -> _Child:
        if self._closing.is_set():
            raise ChildDied("The animation processes are stopping; the job could not be started.")
        child = self._take_idle()
        if child is None:
            settings = self._settings
            setup = ChildSetup(
                settings.torch_threads,
                settings.worker_concurrency,
                settings.job_memory_mb,
                settings.job_kinds,
                self._work,
            )
            child = _Child(self._context, setup)
            with self._lock:
                self._busy.add(child)
        return child

    def _take_idle(self) -> _Child | None:
        """A live idle child, now marked busy; dead ones met on the way are reaped (outside the lock)."""
        dead: list[_Child] = []
        found = None
        with self._lock:
            while self._idle and found is None:
                child = self._idle.pop()
                if child.alive:
                    self._busy.add(child)
                    found = child
                else:
                    dead.append(child)
        for child in dead:
            child.stop_now()
        return found

    def _checkin(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
            keep = child.reusable and child.alive and not self._closing.is_set()
            if keep:
                self._idle.append(child)
        if not keep:
            # Dead, closing, out of memory, or a reply may be pending (the parent side raised).
            child.stop_now()
