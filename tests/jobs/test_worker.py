"""The job machinery: restart in the middle of a job, cancel, failures and their credit.

These use a fake executor (the job machinery is under test, not animation); the real pipeline
is exercised in test_end_to_end.py.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import load_job

from animatica.errors import AnimaticaError

SRC = Path(__file__).resolve().parents[2] / "src"

# A worker process whose animation never ends, so that it can be killed mid-job.
HANGING_WORKER = """
import sys, time
from animatica.db import Database
from animatica.jobs.runner import JobRunner
from animatica.settings import Settings
from animatica.storage import open_storage

def hang(execution, on_progress, should_cancel):
    class P: stage, done, total, fps, eta_seconds = "animate", 1, 10, 1.0, 9.0
    on_progress(P())
    print("running", flush=True)
    time.sleep(3600)

settings = Settings()
runner = JobRunner(Database(settings.database_url), open_storage(settings.storage_url), settings, hang, {})
runner.start()
time.sleep(3600)
"""


def _kill_worker_mid_job(settings: Any) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "ANIMATICA_HOME": str(settings.home),
        "ANIMATICA_DATABASE_URL": settings.database_url,
        "ANIMATICA_STORAGE_URL": settings.storage_url,
        "ANIMATICA_SECRET_KEY": settings.secret_key,
        "ANIMATICA_JOB_POLL_SECONDS": "0.05",
        "ANIMATICA_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING_WORKER], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "running"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)


def _left_by_a_killed_worker(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any
) -> tuple[dict[str, str], str]:
    """Alice's tokens and her job, taken by a worker process that was then killed mid-job."""
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    _kill_worker_mid_job(settings)
    return tokens, job_id


def test_job_running_in_a_killed_process_is_requeued_and_finishes(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any, db: Any
) -> None:
    tokens, job_id = _left_by_a_killed_worker(make_client, api, media, settings)
    stuck = load_job(db, job_id)
    assert stuck.status == "running" and stuck.attempts == 1

    # The restarted service notices the dead worker at once (same host, pid gone).
    restarted = make_client(worker=True)
    job = api.wait_for(restarted, tokens, job_id)
    assert job["status"] == "succeeded"
    assert load_job(db, job_id).attempts == 2
    assert api.credits(restarted, tokens) == 2


def test_job_abandoned_too_often_fails_and_returns_the_credit(
    make_client: Any, api: Any, media: dict[str, Path], settings: Any, db: Any
) -> None:
    tokens, job_id = _left_by_a_killed_worker(make_client, api, media, settings)
    restarted = make_client(worker=True, job_max_attempts=1)
    job = api.wait_for(restarted, tokens, job_id)
    assert job["status"] == "failed" and "credit was returned" in job["error"]
    assert api.credits(restarted, tokens) == 3


def test_cancel_running_and_queued_jobs_returns_credits(
    make_client: Any, api: Any, media: dict[str, Path], executor: Any
) -> None:
    executor.gate.clear()  # animations block until released
    client = make_client(worker=True, free_credits=3)
    tokens = api.signup_login(client, "alice")
    running = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert executor.started.wait(10)
    queued = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    assert client.get(f"/api/v1/animations/{queued}", headers=api.bearer(tokens)).json()["status"] == "queued"
    assert api.credits(client, tokens) == 1

    assert (
        client.post(f"/api/v1/animations/{queued}/cancel", headers=api.bearer(tokens)).json()["status"]
        == "canceled"
    )
    busy = client.delete(f"/api/v1/animations/{running}", headers=api.bearer(tokens))
    assert busy.status_code == 409
    client.post(f"/api/v1/animations/{running}/cancel", headers=api.bearer(tokens))
    assert api.wait_for(client, tokens, running)["status"] == "canceled"
    assert api.credits(client, tokens) == 3
    again = client.post(f"/api/v1/animations/{running}/cancel", headers=api.bearer(tokens))
    assert again.status_code == 409
    no_result = client.get(f"/api/v1/animations/{running}/result", headers=api.bearer(tokens))
    assert no_result.status_code == 409


def test_failures_return_the_credit_and_keep_the_message(
    make_client: Any, api: Any, media: dict[str, Path], executor: Any, settings: Any
) -> None:
    client = make_client(worker=True)
    tokens = api.signup_login(client, "alice")
    executor.error = AnimaticaError("No face was found in the source image; use a photo with a visible face.")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    job = api.wait_for(client, tokens, job_id)
    assert job["status"] == "failed" and job["error"].startswith("No face was found")
    executor.error = RuntimeError("boom: /secret/path")
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    job = api.wait_for(client, tokens, job_id)
    assert job["status"] == "failed" and "boom" not in job["error"]
    assert api.credits(client, tokens) == 3
    # Nothing but the inputs stays in storage after failures.
    root = Path(settings.storage_url.removeprefix("file://"))
    assert not [p for p in root.rglob("result.mp4")]


def test_what_the_animation_worked_around_is_told_with_the_job(
    make_client: Any, api: Any, media: dict[str, Path], executor: Any
) -> None:
    """Notes of the animation (e.g. which face detector found the face) reach the job's owner."""
    client = make_client(worker=True)
    tokens = api.signup_login(client, "alice")
    executor.notes = ["The face in the source image was found by the CNN face detector."]
    job_id = api.submit(client, tokens, media["image"], media["video"]).json()["id"]
    job = api.wait_for(client, tokens, job_id)
    assert job["status"] == "succeeded"
    assert job["notes"] == ["The face in the source image was found by the CNN face detector."]
