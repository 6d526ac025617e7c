"""A real server command under test, and the processes it starts, read from /proc.

A process is known by its identity, ``(pid, start time)``: a pid alone may be reused by an
unrelated process once the first one is gone, and "nothing left behind" must not be fooled by it.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery"
FINAL_STATUSES = frozenset({"succeeded", "failed", "canceled"})

Identity = tuple[int, str]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None when there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def identity(pid: int) -> Identity | None:
    fields = stat(pid)
    return None if fields is None else (pid, fields[19])  # start time tells a reused pid apart


def parent(pid: int) -> int | None:
    fields = stat(pid)
    return None if fields is None else int(fields[1])


def descendants(pid: int) -> set[Identity]:
    found: set[Identity] = set()
    todo = [pid]
    while todo:
        parent_pid = todo.pop()
        for task in Path(f"/proc/{parent_pid}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                child_identity = identity(child)
                if child_identity is not None and child_identity not in found:
                    found.add(child_identity)
                    todo.append(child)
    return found


def in_session(session: int) -> set[Identity]:
    """Processes of a session, found even after their parent is gone."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat(int(entry.name))
            if fields is not None and int(fields[3]) == session:
                member = identity(int(entry.name))
                if member is not None:
                    found.add(member)
    return found


def running(process: Identity) -> bool:
    """Still the same process, and not a zombie waiting for its parent to collect it."""
    fields = stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"


def wait_gone(processes: Collection[Identity], timeout: float = 60.0) -> set[Identity]:
    """The processes still running when they are all gone or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        left = {process for process in processes if running(process)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def listening_inode(port: int) -> str:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def serve_command(port: int, *options: str) -> list[str]:
    """``animatica serve`` as installed beside this interpreter."""
    return [str(Path(sys.executable).with_name("animatica")), "serve", "--port", str(port), *options]


def server_env(home: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any Animatica setting or shared metrics folder of its own,
    for a server on ``home`` that logs in text and animates on one thread."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANIMATICA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        ANIMATICA_HOME=str(home),
        ANIMATICA_SECRET_KEY=secrets.token_urlsafe(48),
        ANIMATICA_LOG_FORMAT="text",
        ANIMATICA_TORCH_THREADS="1",
    )
    env.update(variables)
    return env


class Server:
    """A server command in its own session, its output in a log file, waited on until it answers.

    The command is ``animatica serve`` with ``options`` unless ``command`` builds another one for
    the free port chosen here.
    """

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *options: str,
        command: Callable[[int], list[str]] | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        args = command(self.port) if command is not None else serve_command(self.port, *options)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None, f"the server exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"the server did not start:\n{self.tail()}"
            try:
                if httpx.get(f"{self.base}/healthz", timeout=10).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the output: enough to tell why an assertion failed."""
        return self.output()[-6000:]

    def processes(self) -> set[Identity]:
        """The server and every process below it."""
        own = identity(self.process.pid)
        return descendants(self.process.pid) | ({own} if own is not None else set())

    def children(self) -> list[int]:
        return [pid for pid, _start in descendants(self.process.pid) if parent(pid) == self.process.pid]

    def web_processes(self) -> list[int]:
        """The supervisor's children that accept connections: they hold the listening socket."""
        listening = listening_inode(self.port)
        return [pid for pid in self.children() if listening in socket_inodes(pid)]

    def animator(self, timeout: float = 180.0) -> tuple[int, int]:
        """A job's animation process (the one running at the lowest priority) and its parent."""
        from animatica.jobs.child import NICENESS

        niceness = min(19, os.nice(0) + NICENESS)  # the server runs at ours
        deadline = time.monotonic() + timeout
        while True:
            for pid, _start in descendants(self.process.pid):
                fields = stat(pid)
                if fields is not None and int(fields[16]) == niceness:
                    return pid, int(fields[1])
            assert time.monotonic() < deadline, f"no animation process appeared:\n{self.tail()}"
            time.sleep(0.02)

    def stop(self, timeout: float = 180.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not stop on SIGTERM:\n{self.tail()}") from None

    def kill(self) -> None:
        """After a failed test: the server's whole session, leftovers included."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


def signed_in(client: httpx.Client, username: str = "alice") -> dict[str, str]:
    """Headers of a new account, signed up and logged in."""
    user = {"username": username, "password": PASSWORD}
    assert client.post("/api/v0/auth/signup", json=user).status_code == 201
    token = client.post("/api/v0/auth/login", json=user).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def wait_status(
    client: httpx.Client,
    headers: dict[str, str],
    job_id: str,
    wanted: Collection[str] = FINAL_STATUSES,
    timeout: float = 600.0,
) -> Any:
    """The job as the API shows it once its status is one of ``wanted``."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/v1/animations/{job_id}", headers=headers).json()
        if job["status"] in wanted:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job}"
        time.sleep(0.1)
