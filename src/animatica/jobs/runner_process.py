"""Which process runs a database's jobs, and how the other processes wake it.

A job runner animates ``worker_concurrency`` jobs at once and keeps house (recovers abandoned jobs,
applies retention); a second runner on the same database would double both, so a runner is hosted
only by the process that holds the database's runner lock: a PostgreSQL advisory lock (held by one
connection, released by the server when that connection or its process ends), or on SQLite an
exclusive ``flock`` of a file beside the database file (released by the kernel when the process
ends). A process that finds the lock taken stands by and takes over when it is released, so a
web server whose runner process died, or that was started under a multi-process server, still gets
its jobs run by exactly one process.

The other processes ring a doorbell when they queue a job: a datagram to a local socket named
after the database (Linux abstract namespace, so no file is left behind). The host wakes an idle
worker on it instead of at its next poll. The doorbell carries nothing else: a lost datagram
costs at most one poll interval, and anyone able to ring it can only make the runner look at the
queue. Canceling needs no message either: a running job's watch reads the job's cancel flag from
the database twice a second, whichever process set it.

Limits: on PostgreSQL the lock lives as long as its connection, so a database restart releases it
while the runner goes on; a second host waiting on the same database may then start a runner too.
Processes on other machines cannot ring the doorbell; their jobs are found by the runner's poll.
"""

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import URL

from animatica.jobs.runner import JobRunner

log = logging.getLogger("animatica.jobs")

RUNNER_LOCK = 0x414E4952  # "ANIR": the advisory lock id of the job runner
RING = b"queued"
LISTEN_SECONDS = 1.0  # how often the doorbell's thread checks whether it was closed


class RunnerLock(Protocol):
    def acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it (again)."""
        ...

    def release(self) -> None: ...


class FileLock:
    """An exclusive ``flock`` of one file: per open file, so two holders in one process conflict too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: Any = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")  # for an operator wondering who holds it
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class AdvisoryLock:
    """A PostgreSQL session advisory lock, held by a connection kept out of the pool for it."""

    def __init__(self, engine: Engine, key: int = RUNNER_LOCK) -> None:
        self.engine = engine
        self.key = key
        self._holder: Connection | None = None

    def acquire(self) -> bool:
        if self._holder is not None:
            return True
        holder = self.engine.connect()
        try:
            taken = bool(
                holder.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar()
            )
            holder.commit()
        except BaseException:
            holder.close()
            raise
        if not taken:
            holder.close()
            return False
        self._holder = holder
        return True

    def release(self) -> None:
        if self._holder is None:
            return
        # Closing the database connection itself (not handing it back to the pool) ends the
        # session, and with it the lock, even when an unlock statement could not be sent.
        with contextlib.suppress(Exception):
            self._holder.invalidate()
        with contextlib.suppress(Exception):
            self._holder.close()
        self._holder = None


def _sqlite_file(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def runner_lock(engine: Engine) -> RunnerLock | None:
    """The lock that elects this database's runner; None where no other process can share it."""
    if engine.url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine)
    path = _sqlite_file(engine.url)
    if path is None:
        return None
    return FileLock(path.with_name(f"{path.name}.runner-lock"))


def doorbell_address(engine: Engine) -> str | None:
    """The doorbell of this database's runner (an abstract socket name); None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    path = _sqlite_file(engine.url)
    if path is not None:
        identity = str(path)
    elif engine.url.get_backend_name() == "sqlite":
        return None  # a database in one process's memory: its runner is in that process
    else:
        identity = engine.url.render_as_string(hide_password=True)
    return "\0animatica-runner-" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def ring(address: str | None) -> None:
    """Wake the runner listening at ``address``, if any; never waits and never fails."""
    if address is None:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as bell:
        bell.setblocking(False)
        # Refused (nobody listens) or full (a wake-up is already waiting): either way nothing to do.
        bell.sendto(RING, address)


class Doorbell:
    """The host's end: every datagram received calls ``on_ring``."""

    def __init__(self, address: str, on_ring: Callable[[], None]) -> None:
        self.address = address
        self.on_ring = on_ring
        self._socket: socket.socket | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> bool:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            listener.bind(self.address)
        except OSError as exc:
            listener.close()
            log.warning(
                "job runner doorbell unavailable; queued jobs wait for the poll", extra={"error": str(exc)}
            )
            return False
        listener.settimeout(LISTEN_SECONDS)
        self._socket = listener
        self._thread = threading.Thread(target=self._listen, name="animatica-doorbell", daemon=True)
        self._thread.start()
        return True

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _listen(self) -> None:
        assert self._socket is not None
        while not self._closed.is_set():
            try:
                self._socket.recv(64)
            except TimeoutError:
                continue
            except OSError:
                return
            self.on_ring()


class RunnerHost:
    """What the service holds as its runner: the ``JobRunner`` when this process hosts it, else the
    doorbell of the process that does.

    ``may_host=False`` is a web process whose runner is known to live elsewhere (``animatica serve``
    starts it in a process of its own): ``start`` then hosts nothing and never stands by.
    """

    def __init__(
        self,
        runner: JobRunner,
        lock: RunnerLock | None,
        address: str | None,
        *,
        may_host: bool = True,
        retry_seconds: float = 1.0,
    ) -> None:
        self.runner = runner
        self.lock = lock
        self.address = address
        self.may_host = may_host
        self.retry_seconds = retry_seconds
        self._hosting = False
        self._stop = threading.Event()
        self._transition = threading.Lock()  # hosting begins or ends under it, never both at once
        self._standby: threading.Thread | None = None
        self._doorbell: Doorbell | None = None

    @property
    def executor(self) -> Any:
        return self.runner.executor

    @property
    def hosting(self) -> bool:
        """True while this process runs the jobs of its database."""
        return self._hosting

    @property
    def stopping(self) -> bool:
        """True once ``stop`` has begun."""
        return self._stop.is_set()

    def start(self) -> None:
        if not self.may_host or self._standby is not None or self._hosting:
            return
        self._stop.clear()
        if self._take_over():
            return
        log.info("another process runs the jobs of this database; this one stands by to take over")
        self._standby = threading.Thread(target=self._stand_by, name="animatica-runner-standby", daemon=True)
        self._standby.start()

    def stop(self, grace: float | None = None, release: Callable[[], None] | None = None) -> None:
        """As ``JobRunner.stop`` when hosting (then the lock is given up); else end the standby."""
        self._stop.set()
        if self._standby is not None:
            self._standby.join()
            self._standby = None
        with self._transition:
            if not self._hosting:
                return
            if self._doorbell is not None:
                self._doorbell.close()
                self._doorbell = None
            try:
                self.runner.stop(grace, release=release)
            finally:
                self._hosting = False
                if self.lock is not None:
                    self.lock.release()

    def notify(self) -> None:
        """A job was queued: wake the runner, here or in the process hosting it."""
        if self._hosting:
            self.runner.notify()
        else:
            ring(self.address)

    def cancel_local(self, job_id: str) -> None:
        """Stop the job now if it runs here; elsewhere its runner reads the flag the caller set."""
        self.runner.cancel_local(job_id)

    def _take_over(self) -> bool:
        with self._transition:
            if self._stop.is_set():
                return False
            try:
                if self.lock is not None and not self.lock.acquire():
                    return False
            except Exception:
                log.exception("could not ask for the job runner lock")
                return False
            # The doorbell first: a job queued while the workers start still wakes them.
            if self.address is not None:
                doorbell = Doorbell(self.address, self.runner.notify)
                if doorbell.open():
                    self._doorbell = doorbell
            try:
                self.runner.start()
            except BaseException:
                if self._doorbell is not None:
                    self._doorbell.close()
                    self._doorbell = None
                if self.lock is not None:
                    self.lock.release()
                raise
            self._hosting = True
            log.info("job runner started", extra={"pid": os.getpid()})
            return True

    def _stand_by(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                if self._take_over():
                    log.info("this process took over the job runner")
                    return
            except Exception:
                log.exception("could not start the job runner; trying again")
