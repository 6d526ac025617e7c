"""Animation in long-lived child processes, so the web server never waits on it.

Animating holds the GIL and the CPU for minutes; run in a thread of the web process it made status
polls take seconds (issue 5). Here every job that runs at the same time has its own child process,
spawned on first use and kept, so the engine's model cache stays warm between jobs. A child that
dies fails only its own job; the next job gets a fresh child.

The wire protocol is one request (plain data) down the pipe, then progress messages and exactly one
final message back. Cancellation goes through a shared event that the pipeline polls.
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
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Event
from typing import Any

from animatica.errors import AnimaticaError
from animatica.jobs.execute import Execution, request_fields, torch_threads
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")

POLL_SECONDS = 0.1  # how often the parent asks should_cancel() and notices a dead child
CANCEL_GRACE_SECONDS = 10.0  # a child that ignores a cancel this long is killed
NICENESS = 19  # below the web server, so requests stay fast while a job animates
PARENT_CHECK_SECONDS = 1.0
STOP_SECONDS = 5.0

PROGRESS, DONE, FAILED, CRASHED = "progress", "done", "failed", "crashed"


class ChildDied(RuntimeError):
    """The child ended in the middle of a job (killed, out of memory, a crash in native code)."""


# --- the child side -------------------------------------------------------------------------


def _child_main(conn: Connection, cancel: Event, threads: int) -> None:
    """Serve animation requests until the pipe closes or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the parent decides
    os.nice(NICENESS)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()

    import torch

    from animatica.pipeline import AnimationRequest, animate

    torch.set_num_threads(threads)
    while True:
        try:
            fields = conn.recv()
        except (EOFError, OSError):
            return
        if fields is None:
            return
        try:
            result = animate(
                AnimationRequest(**fields),
                on_progress=lambda progress: conn.send((PROGRESS, progress)),
                should_cancel=cancel.is_set,
            )
        except AnimaticaError as error:
            conn.send((FAILED, (type(error).__module__, type(error).__qualname__, str(error))))
        except Exception as error:
            conn.send((CRASHED, "".join(traceback.format_exception(error))))
        else:
            conn.send((DONE, result))


def _exit_with_parent(parent: int) -> None:
    """A child mid-job never reads its pipe, so it must notice an orphaning by itself."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


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
    """One child process and its pipe; `in_sync` is False while a reply may still be unread."""

    def __init__(self, context: SpawnContext, threads: int) -> None:
        self.conn, child_end = context.Pipe()
        self.cancel = context.Event()
        self.process = context.Process(
            target=_child_main,
            args=(child_end, self.cancel, threads),
            name="animatica-animator",
            daemon=True,
        )
        self.process.start()
        child_end.close()
        self.in_sync = True

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def run(
        self, fields: dict[str, Any], on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        self.cancel.clear()
        self.in_sync = False
        try:
            self.conn.send(fields)
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
                if kind == PROGRESS:
                    on_progress(payload)
                else:
                    self.in_sync = True
                    if kind == DONE:
                        return payload
                    if kind == FAILED:
                        raise _rebuild(*payload)
                    raise RuntimeError(f"The animation process failed:\n{payload}")
            elif ready:
                raise self._died()
            now = time.monotonic()
            if cancelled_at is None and now >= next_check:
                next_check = now + POLL_SECONDS
                if should_cancel():
                    self.cancel.set()
                    cancelled_at = now
            elif cancelled_at is not None and now - cancelled_at > CANCEL_GRACE_SECONDS:
                self.kill()
                raise AnimaticaError("The animation was canceled.")

    def _died(self) -> ChildDied:
        self.process.join(STOP_SECONDS)
        return ChildDied(
            f"The animation process ended in the middle of a job (exit code {self.process.exitcode})."
        )

    def stop(self) -> None:
        """Ask an idle child to leave; kill it if it does not."""
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(STOP_SECONDS)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
            self.process.join(STOP_SECONDS)
        self.conn.close()


class ProcessExecutor:
    """The service's executor: same call shape as `PipelineExecutor`, pipeline in child processes."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Child] = []
        self._busy: set[_Child] = set()
        self._lock = threading.Lock()
        self._closed = False

    def __call__(
        self, execution: Execution, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        fields = request_fields(self._settings, execution)  # a bad engine fails before any child starts
        child = self._checkout()
        try:
            return child.run(fields, on_progress, should_cancel)
        finally:
            self._checkin(child)

    def pids(self) -> list[int]:
        """Process ids of the live children (for operators, and for tests that kill one)."""
        with self._lock:
            children = [*self._idle, *self._busy]
        return [child.process.pid for child in children if child.process.pid and child.alive]

    def close(self) -> None:
        """Stop every child; a job still running in one fails as if its child had died."""
        with self._lock:
            self._closed = True
            idle, busy = list(self._idle), list(self._busy)
            self._idle.clear()
        for child in idle:
            child.stop()
        for child in busy:
            # Only the process: the job's thread still reads the pipe, sees the death, then discards it.
            child.process.kill()

    def _checkout(self) -> _Child:
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    self._busy.add(child)
                    return child
                child.kill()
        child = _Child(self._context, torch_threads(self._settings))
        with self._lock:
            self._busy.add(child)
        return child

    def _checkin(self, child: _Child) -> None:
        with self._lock:
            self._busy.discard(child)
            keep = child.in_sync and child.alive and not self._closed
            if keep:
                self._idle.append(child)
        if not keep:
            # Dead, closing, or a reply may be pending (the parent side raised): never reuse it.
            child.kill()
