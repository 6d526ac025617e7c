"""Bounded jobs: a time limit, a stall limit and a memory cap stop a job, fail it with a message that
says why, return its credit, and leave the worker free for the next job; job errors never show
server paths.

The thread-mode tests use an executor scripted per job; the process-mode tests run real child
processes with the work functions of ``child_work`` in place of the pipeline.
"""

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.jobs import child_work

from animatica.errors import MediaError
from animatica.jobs.bounds import BASE_SECONDS, SECONDS_PER_FRAME, JobBounds
from animatica.jobs.child import ProcessExecutor
from animatica.jobs.messages import (
    INTERNAL_ERROR,
    memory_message,
    public_text,
    stall_message,
    time_limit_message,
    user_error,
)
from animatica.pipeline import AnimationResult, Cancelled, Progress
from animatica.settings import Settings


class Scripted:
    """A thread-mode executor doing what ``mode`` says for the next job (see the tests)."""

    def __init__(self, home: Path, write_video: Callable[..., Path]) -> None:
        self.mode = "finish"
        self.home = home
        self.write_video = write_video

    def __call__(
        self, execution: Any, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        mode = self.mode
        on_progress(Progress("load", 0, 8, 0.0, None))
        if mode == "endless":  # keeps reporting progress, never ends
            done = 0
            while not should_cancel():
                done += 1
                on_progress(Progress("animate", done % 8, 8, 1.0, None))
                time.sleep(0.02)
            raise Cancelled("the animation was canceled")
        if mode == "silent":  # reports nothing more, but does stop when asked
            while not should_cancel():
                time.sleep(0.02)
            raise Cancelled("the animation was canceled")
        if mode == "paths":
            raise MediaError(
                f"{execution.inputs['driving']} cannot be decoded; see {self.home}/logs/decoder.log."
            )
        self.write_video(execution.output, frames=6)
        return AnimationResult(execution.output, 6, 8.0, 0.1, False)


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Apps with a given executor and settings, their worker started, stopped after the test."""
    clients: list[TestClient] = []

    def factory(executor: Any, **overrides: Any) -> TestClient:
        from animatica.service.app import create_app

        app_settings = settings.model_copy(update={"worker_enabled": True, **overrides})
        client = TestClient(create_app(app_settings, executor=executor))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        client.__exit__(None, None, None)


def _submit(client: TestClient, api: Any, tokens: dict[str, str], media: dict[str, Path]) -> str:
    response = api.submit(client, tokens, media["image"], media["video"])
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# --- thread mode -----------------------------------------------------------------------------


def test_a_job_over_its_time_limit_is_stopped_failed_and_refunded(
    serve: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    executor = Scripted(settings.home, api.write_mp4)
    client = serve(executor, job_timeout_seconds=1.0, job_stall_seconds=0.0)
    tokens = api.signup_login(client, "alice")
    executor.mode = "endless"
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=60)
    assert job["status"] == "failed"
    assert job["error"] == time_limit_message(1.0)
    assert "limit of 1 s" in job["error"] and "credit was returned" in job["error"]
    assert api.credits(client, tokens) == 3

    executor.mode = "finish"  # the worker is free again
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=60)
    assert job["status"] == "succeeded"
    assert api.credits(client, tokens) == 2


def test_a_job_that_stops_reporting_progress_is_stopped_failed_and_refunded(
    serve: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    executor = Scripted(settings.home, api.write_mp4)
    client = serve(executor, job_stall_seconds=1.0)
    tokens = api.signup_login(client, "alice")
    executor.mode = "silent"
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=60)
    assert job["status"] == "failed"
    assert job["error"] == stall_message(1.0)
    assert api.credits(client, tokens) == 3


def test_a_job_error_names_the_users_file_and_no_server_path(
    serve: Any, api: Any, media: dict[str, Path], settings: Settings
) -> None:
    executor = Scripted(settings.home, api.write_mp4)
    client = serve(executor)
    tokens = api.signup_login(client, "alice")
    executor.mode = "paths"
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=60)
    assert job["status"] == "failed"
    # The job's copy of the video is named as the user uploaded it; other paths keep their file name.
    assert job["error"] == "drive.mp4 cannot be decoded; see decoder.log."
    assert api.credits(client, tokens) == 3


# --- process mode: real children -------------------------------------------------------------


@pytest.fixture
def mode_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "child-work-mode"
    child_work.set_mode(path, "finish")
    monkeypatch.setenv(child_work.MODE_VARIABLE, str(path))  # children inherit it when spawned
    return path


@pytest.fixture
def process_executor(settings: Settings) -> Iterator[Callable[..., ProcessExecutor]]:
    made: list[ProcessExecutor] = []

    def factory(**overrides: Any) -> ProcessExecutor:
        executor = ProcessExecutor(
            settings.model_copy(update={"torch_threads": 1, **overrides}),
            work=child_work.run,
            cancel_grace=1.0,
        )
        made.append(executor)
        return executor

    yield factory
    for executor in made:
        executor.close()


def _wait_for_child(executor: ProcessExecutor, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while not executor.pids():
        assert time.monotonic() < deadline, "no animation child was started"
        time.sleep(0.05)
    return executor.pids()[0]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_hung_child_is_killed_and_the_next_job_gets_a_fresh_one(
    process_executor: Any, serve: Any, api: Any, media: dict[str, Path], mode_file: Path
) -> None:
    executor = process_executor()
    client = serve(executor, job_stall_seconds=2.0)
    tokens = api.signup_login(client, "alice")
    child_work.set_mode(mode_file, "hang")
    job_id = _submit(client, api, tokens, media)
    hung = _wait_for_child(executor)
    job = api.wait_for(client, tokens, job_id, timeout=120)
    assert job["status"] == "failed"
    assert job["error"] == stall_message(2.0)
    assert api.credits(client, tokens) == 3
    assert _gone(hung), "the hung child is still there"

    child_work.set_mode(mode_file, "finish")
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=120)
    assert job["status"] == "succeeded"
    assert executor.pids() and hung not in executor.pids()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_child_over_its_memory_cap_fails_the_job_clearly_and_the_next_job_runs(
    process_executor: Any, serve: Any, api: Any, media: dict[str, Path], mode_file: Path
) -> None:
    executor = process_executor(job_memory_mb=3072)
    client = serve(executor)
    tokens = api.signup_login(client, "alice")
    child_work.set_mode(mode_file, "allocate")
    job_id = _submit(client, api, tokens, media)
    first = _wait_for_child(executor)
    job = api.wait_for(client, tokens, job_id, timeout=120)
    assert job["status"] == "failed"
    assert job["error"] == memory_message(3072)
    assert "3072 MB" in job["error"] and "credit was returned" in job["error"]
    assert api.credits(client, tokens) == 3

    child_work.set_mode(mode_file, "finish")
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=120)
    assert job["status"] == "succeeded"
    (fresh,) = executor.pids()
    assert fresh != first and _gone(first)  # a child that ran out of memory is not reused
    limits = Path(f"/proc/{fresh}/limits").read_text().splitlines()
    address_space = next(line for line in limits if line.startswith("Max address space"))
    assert address_space.split()[3] == str(3072 * 1024 * 1024)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_error_from_a_child_shows_no_server_path(
    process_executor: Any, serve: Any, api: Any, media: dict[str, Path], mode_file: Path
) -> None:
    client = serve(process_executor())
    tokens = api.signup_login(client, "alice")
    child_work.set_mode(mode_file, "fail-with-paths")
    job = api.wait_for(client, tokens, _submit(client, api, tokens, media), timeout=120)
    assert job["status"] == "failed"
    assert job["error"] == "drive.mp4 cannot be decoded; see decoder.log."


# --- the rules themselves --------------------------------------------------------------------


def test_the_time_limit_grows_with_the_driving_video_unless_one_is_set() -> None:
    derived = JobBounds()
    assert derived.time_limit(450) == BASE_SECONDS + SECONDS_PER_FRAME * 450
    assert derived.time_limit(9000) > derived.time_limit(450)
    assert derived.time_limit(None) is None
    fixed = JobBounds(timeout_seconds=120.0)
    assert fixed.time_limit(450) == fixed.time_limit(None) == 120.0
    # a slower engine gets more time per frame; a set limit stays what the operator set
    assert derived.for_engine("liveportrait").time_limit(450) > derived.time_limit(450)
    assert derived.for_engine("landmarks").time_limit(450) == derived.time_limit(450)
    assert fixed.for_engine("liveportrait").time_limit(450) == 120.0


def test_public_text_keeps_file_names_and_drops_where_they_live() -> None:
    home = "/srv/animatica/home"
    assert public_text(f"{home}/checkpoints/vox.pth.tar is corrupt.") == "vox.pth.tar is corrupt."
    assert public_text("[Errno 2] No such file: '/tmp/animatica-job-x1/driving.mp4'") == (
        "[Errno 2] No such file: 'driving.mp4'"
    )
    assert public_text("cannot open file:///var/lib/animatica/files/jobs/a/b.png") == "cannot open b.png"
    assert public_text("see ~/.cache/log.txt, or (/opt/x/y)") == "see log.txt, or (y)"
    labels = {"/tmp/job-1/driving.mp4": "my clip.mov"}
    assert public_text("/tmp/job-1/driving.mp4 has no frames", labels) == "my clip.mov has no frames"
    # Fractions, ratios, relative paths and URLs are not paths on this server.
    untouched = "25/1 fps, 16/9, w/o sound, data/shapes, see https://example.com/help/x"
    assert public_text(untouched) == untouched


def test_user_error_words() -> None:
    assert user_error(MediaError("/srv/x/clip.mp4 is not a video")) == "clip.mp4 is not a video"
    assert user_error(RuntimeError("boom in /srv/x")) == INTERNAL_ERROR
    assert user_error(MemoryError()) == memory_message(None)
    allocator = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes")
    assert user_error(allocator, memory_mb=2048) == memory_message(2048)
