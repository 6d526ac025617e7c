"""Stopping the server: a running job finishes within the grace or goes back to the queue, and a
stopped ``animatica serve`` leaves no process behind.

The end-to-end test runs the real command on a free port, stops it with SIGTERM (what systemd,
docker and Kubernetes send) while a job animates and a synchronous request waits on another,
then checks the processes it had started and the jobs in the database, and lets a second server
on the same home finish them.
"""

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from animatica.db import Database, ledger
from animatica.db.models import Job, User
from animatica.jobs import state
from animatica.jobs.child import NICENESS
from animatica.settings import Settings

PASSWORD = "correct horse battery"


def _job(db: Database, job_id: str) -> Job:
    with db.read() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _balance(db: Database, username: str) -> int:
    with db.read() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        assert user_id is not None
        return ledger.balance(session, user_id)


@pytest.fixture
def app_client(settings: Settings, executor: Any) -> Iterator[Any]:
    """An app with its worker, that the test stops itself (on another thread, as a signal would)."""
    from animatica.service.app import create_app

    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(
            create_app(settings.model_copy(update={"worker_enabled": True, **overrides}), executor)
        )
        client.__enter__()
        clients.append(client)
        return client

    yield build
    executor.gate.set()
    for client in clients:
        if not client.app.state.ctx.runner.stopping:  # a test that failed before stopping it
            client.__exit__(None, None, None)


def _stop_in_background(client: TestClient) -> threading.Thread:
    stopper = threading.Thread(target=client.__exit__, args=(None, None, None))
    stopper.start()
    return stopper


def test_a_job_that_ends_within_the_grace_is_kept(
    app_client: Any, api: Any, media: dict[str, Path], executor: Any, db: Database
) -> None:
    executor.gate.clear()
    client = app_client(shutdown_grace_seconds=120.0)
    tokens = api.signup_login(client, "alice")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert executor.started.wait(30)
    runner = client.app.state.ctx.runner
    stopper = _stop_in_background(client)
    deadline = time.monotonic() + 30
    while not runner.stopping:
        assert time.monotonic() < deadline, "the server did not start stopping"
        time.sleep(0.01)
    executor.gate.set()  # the animation ends after the stop began, within the grace
    stopper.join(60)
    assert not stopper.is_alive()
    job = _job(db, job_id)
    assert job.status == state.SUCCEEDED and job.result_key
    assert _balance(db, "alice") == 2


def test_a_job_still_running_after_the_grace_goes_back_to_the_queue(
    app_client: Any, api: Any, media: dict[str, Path], executor: Any, db: Database
) -> None:
    executor.gate.clear()
    client = app_client(shutdown_grace_seconds=0.2)
    tokens = api.signup_login(client, "alice")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert executor.started.wait(30)
    stopper = _stop_in_background(client)
    stopper.join(60)
    assert not stopper.is_alive()
    job = _job(db, job_id)
    assert (job.status, job.attempts, job.worker_id) == (state.QUEUED, 0, None)
    assert _balance(db, "alice") == 2  # its credit stays reserved for the run after the restart


# --- the real command --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None when there is no such pid."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def _identity(pid: int) -> tuple[int, str] | None:
    fields = _stat(pid)
    return None if fields is None else (pid, fields[19])  # start time tells a reused pid apart


def _descendants(pid: int) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                identity = _identity(child)
                if identity is not None and identity not in found:
                    found.add(identity)
                    todo.append(child)
    return found


def _running(identity: tuple[int, str]) -> bool:
    fields = _stat(identity[0])
    return fields is not None and fields[19] == identity[1] and fields[0] != "Z"


class Server:
    """``animatica serve`` in its own session, its output in a log file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = Path(sys.executable).with_name("animatica")
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(command), "serve", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 180
        while True:
            assert self.process.poll() is None, f"the server exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"the server did not start:\n{self.output()}"
            try:
                if httpx.get(f"{self.base}/healthz", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def terminate(self, timeout: float = 120.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the server did not stop on SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        """After a failed test: the server's whole session, leftovers included."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)


def _wait_gone(processes: set[tuple[int, str]], timeout: float = 60.0) -> set[tuple[int, str]]:
    """The processes still running when they are all gone or ``timeout`` passed."""
    deadline = time.monotonic() + timeout
    while True:
        left = {identity for identity in processes if _running(identity)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _wait_status(
    client: httpx.Client, headers: dict[str, str], job_id: str, wanted: set[str], timeout: float
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/v1/animations/{job_id}", headers=headers).json()
        if job["status"] in wanted:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stayed {job}"
        time.sleep(0.1)


def _animator(server: Server, timeout: float = 120.0) -> int:
    """The server's animation child: the one of its processes that runs at the lowest priority."""
    niceness = min(19, os.nice(0) + NICENESS)  # the server runs at ours
    deadline = time.monotonic() + timeout
    while True:
        for pid, _start in _descendants(server.process.pid):
            fields = _stat(pid)
            if fields is not None and int(fields[16]) == niceness:
                return pid
        assert time.monotonic() < deadline, f"no animation child appeared:\n{server.output()}"
        time.sleep(0.02)


@pytest.mark.slow
def test_sigterm_hands_the_running_job_back_and_leaves_no_process(tmp_path: Path) -> None:
    from animatica.demo import write_demo_inputs

    source, driving = write_demo_inputs(tmp_path / "inputs")
    files = {
        "source_image": ("face.png", source.read_bytes(), "image/png"),
        "driving_video": ("talk.mp4", driving.read_bytes(), "video/mp4"),
    }
    home = tmp_path / "home"
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANIMATICA_")}
    env.update(
        ANIMATICA_HOME=str(home),
        ANIMATICA_SECRET_KEY=secrets.token_urlsafe(48),
        ANIMATICA_LOG_FORMAT="text",
        ANIMATICA_JOB_POLL_SECONDS="0.1",
        ANIMATICA_SHUTDOWN_GRACE_SECONDS="1",
        ANIMATICA_TORCH_THREADS="1",
    )
    first = Server(env, tmp_path / "first.log")
    second: Server | None = None
    try:
        api = httpx.Client(base_url=first.base, timeout=60)
        user = {"username": "alice", "password": PASSWORD}
        assert api.post("/api/v0/auth/signup", json=user).status_code == 201
        headers = {
            "Authorization": f"Bearer {api.post('/api/v0/auth/login', json=user).json()['access_token']}"
        }
        submitted = api.post("/api/v1/animations", headers=headers, files=files)
        assert submitted.status_code == 202, submitted.text
        running_id = submitted.json()["id"]

        # Freeze the animation as soon as its process exists: the job can then neither finish nor
        # fail before the stop, and the stop must get rid of a process that ignores SIGTERM.
        animator = _animator(first)
        os.kill(animator, signal.SIGSTOP)
        assert _wait_status(api, headers, running_id, {"running"}, 60)["status"] == "running"

        # A synchronous request waits on a second job, queued behind the first: an open request
        # that would otherwise hold the stop for as long as the animation takes.
        waiting = threading.Thread(
            target=_ignore_errors,
            args=(api.post, "/api/v0/animation/video"),
            kwargs={"headers": headers, "files": files, "timeout": 300},
        )
        waiting.start()
        deadline = time.monotonic() + 60
        while len(jobs := api.get("/api/v1/animations", headers=headers).json()["items"]) < 2:
            assert time.monotonic() < deadline, jobs
            time.sleep(0.1)
        queued_id = next(job["id"] for job in jobs if job["id"] != running_id)

        processes = _descendants(first.process.pid)
        assert _identity(animator) in processes
        first.terminate()
        waiting.join(60)
        left = _wait_gone(processes)
        assert not left, f"processes left behind: {left}\n{first.output()}"

        db = Database(f"sqlite:///{home / 'animatica.db'}")
        try:
            for job_id in (running_id, queued_id):
                job = _job(db, job_id)
                assert (job.status, job.attempts, job.worker_id) == (state.QUEUED, 0, None)
            assert _balance(db, "alice") == 1  # both credits still reserved
        finally:
            db.dispose()

        second = Server(env, tmp_path / "second.log")
        api = httpx.Client(base_url=second.base, timeout=60)
        for job_id in (running_id, queued_id):
            done = _wait_status(api, headers, job_id, set(state.FINAL), 600)
            assert done["status"] == "succeeded", (done, second.output())
        result = api.get(f"/api/v1/animations/{running_id}/result", headers=headers)
        assert result.status_code == 200 and len(result.content) > 1000
        assert api.get("/api/v1/me", headers=headers).json()["credits"] == 1
        processes = _descendants(second.process.pid)
        second.terminate()
        left = _wait_gone(processes)
        assert not left, f"processes left behind: {left}\n{second.output()}"
    finally:
        first.kill()
        if second is not None:
            second.kill()


def _ignore_errors(call: Any, *args: Any, **kwargs: Any) -> None:
    """A request cut short by the stop may end either way; the test judges the server, not it."""
    with contextlib.suppress(httpx.HTTPError):
        call(*args, **kwargs)
