"""Stopping the server: a running job finishes within the grace or goes back to the queue, and a
stopped ``animatica serve`` leaves no process behind.

The end-to-end test runs the real command on a free port, stops it with SIGTERM (what systemd,
docker and Kubernetes send) while a job animates and a synchronous request waits on another,
then checks the processes it had started and the jobs in the database, and lets a second server
on the same home finish them.
"""

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.conftest import load_job
from tests.process_tree import Server, identity, server_env, signed_in, wait_gone, wait_status

from animatica.db import Database, ledger
from animatica.db.models import User
from animatica.jobs import state
from animatica.settings import Settings


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


def _animating(
    app_client: Any, api: Any, media: dict[str, Path], executor: Any, grace: float
) -> tuple[TestClient, str]:
    """An app with a stop grace of ``grace`` seconds, and alice's job in it, held by the executor's gate."""
    executor.gate.clear()
    client = app_client(shutdown_grace_seconds=grace)
    tokens = api.signup_login(client, "alice")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert executor.started.wait(30)
    return client, job_id


def _stop_in_background(client: TestClient) -> threading.Thread:
    stopper = threading.Thread(target=client.__exit__, args=(None, None, None))
    stopper.start()
    return stopper


def test_a_job_that_ends_within_the_grace_is_kept(
    app_client: Any, api: Any, media: dict[str, Path], executor: Any, db: Database
) -> None:
    client, job_id = _animating(app_client, api, media, executor, grace=120.0)
    runner = client.app.state.ctx.runner
    stopper = _stop_in_background(client)
    deadline = time.monotonic() + 30
    while not runner.stopping:
        assert time.monotonic() < deadline, "the server did not start stopping"
        time.sleep(0.01)
    executor.gate.set()  # the animation ends after the stop began, within the grace
    stopper.join(60)
    assert not stopper.is_alive()
    job = load_job(db, job_id)
    assert job.status == state.SUCCEEDED and job.result_key
    assert _balance(db, "alice") == 2


def test_a_job_still_running_after_the_grace_goes_back_to_the_queue(
    app_client: Any, api: Any, media: dict[str, Path], executor: Any, db: Database
) -> None:
    client, job_id = _animating(app_client, api, media, executor, grace=0.2)
    stopper = _stop_in_background(client)
    stopper.join(60)
    assert not stopper.is_alive()
    job = load_job(db, job_id)
    assert (job.status, job.attempts, job.worker_id) == (state.QUEUED, 0, None)
    assert _balance(db, "alice") == 2  # its credit stays reserved for the run after the restart


# --- the real command --------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_hands_the_running_job_back_and_leaves_no_process(tmp_path: Path) -> None:
    from animatica.demo import write_demo_driving, write_demo_inputs

    (tmp_path / "inputs").mkdir()
    # A 1 s driving clip: the two jobs are animated to the end after the restart, whatever their length.
    write_demo_driving(tmp_path / "inputs" / "driving.mp4", seconds=1)
    source, driving = write_demo_inputs(tmp_path / "inputs")
    files = {
        "source_image": ("face.png", source.read_bytes(), "image/png"),
        "driving_video": ("talk.mp4", driving.read_bytes(), "video/mp4"),
    }
    home = tmp_path / "home"
    env = server_env(home, ANIMATICA_JOB_POLL_SECONDS="0.1", ANIMATICA_SHUTDOWN_GRACE_SECONDS="1")
    first = Server(env, tmp_path / "first.log")
    second: Server | None = None
    try:
        api = httpx.Client(base_url=first.base, timeout=60)
        headers = signed_in(api)
        submitted = api.post("/api/v1/animations", headers=headers, files=files)
        assert submitted.status_code == 202, submitted.text
        running_id = submitted.json()["id"]

        # Freeze the animation as soon as its process exists: the job can then neither finish nor
        # fail before the stop, and the stop must get rid of a process that ignores SIGTERM.
        animator, _parent = first.animator()
        os.kill(animator, signal.SIGSTOP)
        assert wait_status(api, headers, running_id, {"running"}, 60)["status"] == "running"

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

        processes = first.processes()
        assert identity(animator) in processes
        first.stop()
        waiting.join(60)
        left = wait_gone(processes)
        assert not left, f"processes left behind: {left}\n{first.tail()}"

        db = Database(f"sqlite:///{home / 'animatica.db'}")
        try:
            for job_id in (running_id, queued_id):
                job = load_job(db, job_id)
                assert (job.status, job.attempts, job.worker_id) == (state.QUEUED, 0, None)
            assert _balance(db, "alice") == 1  # both credits still reserved
        finally:
            db.dispose()

        second = Server(env, tmp_path / "second.log")
        api = httpx.Client(base_url=second.base, timeout=60)
        for job_id in (running_id, queued_id):
            done = wait_status(api, headers, job_id)
            assert done["status"] == "succeeded", (done, second.tail())
        result = api.get(f"/api/v1/animations/{running_id}/result", headers=headers)
        assert result.status_code == 200 and len(result.content) > 1000
        assert api.get("/api/v1/me", headers=headers).json()["credits"] == 1
        processes = second.processes()
        second.stop()
        left = wait_gone(processes)
        assert not left, f"processes left behind: {left}\n{second.tail()}"
    finally:
        first.kill()
        if second is not None:
            second.kill()


def _ignore_errors(call: Any, *args: Any, **kwargs: Any) -> None:
    """A request cut short by the stop may end either way; the test judges the server, not it."""
    with contextlib.suppress(httpx.HTTPError):
        call(*args, **kwargs)
