"""Job kinds: a kind declared in a module of its own runs through the same lifecycle as an animation,
on the service's runner (its child processes import the module too), and a job of a kind the server
does not know fails with a message saying so, its credit returned."""

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from tests.conftest import add_job, load_job

from animatica.db import Database, ledger
from animatica.db.models import Job
from animatica.jobs import kinds, state
from animatica.jobs.child import ProcessExecutor
from animatica.jobs.kinds import JobKind
from animatica.jobs.lifecycle import ThreadExecutor
from animatica.jobs.runner import JobRunner
from animatica.service.accounts import signup
from animatica.settings import Settings
from animatica.storage import Storage, open_storage

MODULE = "tests.jobs.thumbnail_kind"  # named in the settings only: the runner imports it


def _queue(db: Database, storage: Storage, user_id: int, picture: Path, kind: str) -> str:
    job_id = uuid.uuid4().hex
    storage.put_file(f"jobs/{job_id}/source.png", picture)  # before the runner can see the job
    return add_job(db, user_id, job_id, engine="", source_name="my face.png", kind=kind)


def _wait(db: Database, job_id: str, timeout: float = 180.0) -> Job:
    deadline = time.monotonic() + timeout
    while (job := load_job(db, job_id)).status not in state.FINAL:
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {job.status} {job.stage}"
        time.sleep(0.05)
    return job


def _balance(db: Database, user_id: int) -> int:
    with db.read() as session:
        return ledger.balance(session, user_id)


def _check_thumbnail(storage: Storage, job: Job, folder: Path) -> None:
    assert job.status == state.SUCCEEDED, job.error
    assert job.kind == "thumbnail" and job.result_key == f"jobs/{job.id}/result.png"
    local = folder / "thumbnail.png"
    storage.get_file(job.result_key, local)
    with Image.open(local) as picture:
        assert picture.format == "PNG" and max(picture.size) == 32
    assert job.result_bytes == local.stat().st_size and job.frames == 1


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_declared_kind_runs_to_success_in_the_runners_child_processes(
    settings: Settings, db: Database, media: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"job_kinds": MODULE, "torch_threads": 1})
    storage = open_storage(settings.storage_url)
    user = signup(db, "alice", "password-long-enough", 3)
    job_id = _queue(db, storage, user, media["image"], "thumbnail")
    executor = ProcessExecutor(settings)
    runner = JobRunner(db, storage, settings, executor, {})
    runner.start()
    try:
        job = _wait(db, job_id)
        assert executor.pids(), "the job ran in a child process"
    finally:
        runner.stop(1.0, release=executor.close)
        executor.close()
    _check_thumbnail(storage, job, tmp_path)
    assert _balance(db, user) == 2  # its credit consumed, once


def test_a_declared_kind_runs_in_a_thread_through_the_same_lifecycle(
    settings: Settings, db: Database, media: dict[str, Path], tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"job_kinds": MODULE})
    storage = open_storage(settings.storage_url)
    user = signup(db, "alice", "password-long-enough", 3)
    job_id = _queue(db, storage, user, media["image"], "thumbnail")
    runner = JobRunner(db, storage, settings, ThreadExecutor(settings, set_threads=False), {})
    claimed = state.claim_next(db, runner.worker_id, {})
    assert claimed is not None and claimed.kind == "thumbnail" and set(claimed.inputs) == {"source"}
    assert runner.run(claimed) == state.SUCCEEDED
    _check_thumbnail(storage, load_job(db, job_id), tmp_path)
    assert _balance(db, user) == 2


def test_a_job_of_a_kind_this_server_does_not_know_fails_and_returns_the_credit(
    settings: Settings, db: Database, media: dict[str, Path]
) -> None:
    storage = open_storage(settings.storage_url)
    user = signup(db, "alice", "password-long-enough", 3)
    job_id = _queue(db, storage, user, media["image"], "hologram")
    runner = JobRunner(db, storage, settings, ThreadExecutor(settings, set_threads=False), {})
    claimed = state.claim_next(db, runner.worker_id, {})
    assert claimed is not None
    assert runner.run(claimed) == state.FAILED
    job = load_job(db, job_id)
    assert "cannot run jobs of kind 'hologram'" in (job.error or "") and job.result_key is None
    assert _balance(db, user) == 3


def test_jobs_that_name_no_kind_are_animations(settings: Settings, db: Database) -> None:
    user = signup(db, "alice", "password-long-enough", 3)
    add_job(db, user, "j1", driving_name="talk.mp4")  # no kind named
    claimed = state.load(db, "j1")
    assert claimed is not None and claimed.kind == "animation"
    assert claimed.inputs == {"source": "jobs/j1/source.png", "driving": "jobs/j1/driving.mp4"}
    assert claimed.names == {"source": "face.png", "driving": "talk.mp4"}
    animation = kinds.get("animation")
    assert animation.inputs == ("source", "driving") and animation.segmented is not None
    assert kinds.result_key("j1", animation) == "jobs/j1/result.mp4"


def test_a_kind_reads_only_the_files_a_job_can_store() -> None:
    def run(fields: dict[str, Any], on_progress: Any, should_cancel: Any) -> None:
        return None

    with pytest.raises(ValueError, match="source"):
        kinds.register(JobKind(name="odd", inputs=("mask",), result="x.png", run=run))
    with pytest.raises(ValueError):
        kinds.register(JobKind(name="odd", inputs=(), result="x.png", run=run))


def test_warming_every_built_in_kind_on_default_settings_reports_no_failure(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """What a worker does at start-up: an engine it cannot run (no weights configured) is skipped
    without alarming the operator, and nothing else may fail."""
    with caplog.at_level("WARNING", logger="animatica"):
        kinds.warm_all(settings)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
