"""The ``image`` job kind through the one job lifecycle, on a tiny random-weight Stable Diffusion
pipeline: a progress report per denoising step, the PNG stored at the requested size and the
credit consumed; a cancel stops it between two steps and a missing model fails it with the setting
to set, both returning the credit and storing nothing; a picture stored with the job (an optional
input) reaches the request."""

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tests.conftest import add_job, load_job

from animatica.db import Database, ledger
from animatica.db.models import Job
from animatica.jobs import kinds, lifecycle, state
from animatica.jobs.image import NAME
from animatica.jobs.lifecycle import ThreadExecutor, Watch, run_job
from animatica.service.accounts import signup
from animatica.settings import Settings
from animatica.storage import open_storage
from animatica.storage.base import StorageError

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
WORKER = "test-worker"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.images.tiny_models import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"), "text2img")


def row(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "operation": "generate",
        "prompt": "a red fox in the snow",
        "negative": "",
        "size": [96, 64],
        "steps": 3,
        "guidance": 5.0,
        "seed": 7,
        "scheduler": "default",
        "style_preset": None,
        "loras": [],
        "strength": 0.75,
        "pictures": {},
    }
    return {**values, **changes}


def queue(db: Database, options: dict[str, Any], **fields: Any) -> tuple[int, str]:
    user = signup(db, f"painter{len(options)}{options['operation']}", "password-long-enough", 3)
    values = {"source_key": None, "source_name": "a red fox", **fields}
    job_id = add_job(db, user, kind=NAME, engine="diffusion", options=options, **values)
    return user, job_id


def balance(db: Database, user: int) -> int:
    with db.read() as session:
        return ledger.balance(session, user)


def run(settings: Settings, db: Database, job_id: str, on_step: Any = None) -> tuple[str, list[Any]]:
    """Run the job as a worker does; returns its end and every progress report it made."""
    claimed = state.claim(db, job_id, WORKER, "starting")
    assert claimed is not None
    watch = Watch(db, job_id, WORKER)
    reports: list[Any] = []
    write = watch.on_progress

    def record(progress: Any) -> None:
        reports.append(progress)
        write(progress)
        if on_step is not None and getattr(progress, "stage", "") == "generate":
            on_step(progress)

    watch.on_progress = record  # type: ignore[method-assign]
    storage = open_storage(settings.storage_url)
    end = run_job(db, storage, ThreadExecutor(settings, set_threads=False), claimed, WORKER, watch)
    return end, reports


def stored(settings: Settings, key: str, tmp_path: Path) -> Path | None:
    try:
        open_storage(settings.storage_url).get_file(key, tmp_path / "out.png")
    except StorageError:
        return None
    return tmp_path / "out.png"


def test_a_picture_reports_every_step_is_stored_at_its_size_and_takes_the_credit(
    settings: Settings, db: Database, tiny_model: Path, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"diffusion_model": str(tiny_model)})
    user, job_id = queue(db, row())
    assert balance(db, user) == 2  # reserved

    end, reports = run(settings, db, job_id)

    assert end == state.SUCCEEDED, load_job(db, job_id).error
    steps = [(r.done, r.total) for r in reports if r.stage == "generate"]
    total = steps[-1][1]  # the scheduler's count for 3 steps (PNDM's first step is two model calls)
    assert total >= 3 and steps == [(done, total) for done in range(1, total + 1)]
    job = load_job(db, job_id)
    assert job.result_key == f"jobs/{job_id}/result.png" and job.frames == 1
    result = stored(settings, job.result_key, tmp_path)
    assert result is not None
    with Image.open(result) as picture:
        assert picture.format == "PNG" and picture.size == (96, 64)
    assert balance(db, user) == 2  # consumed


def test_a_cancel_stops_between_two_steps_and_returns_the_credit(
    settings: Settings, db: Database, tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker looks for a cancel at most once a progress interval; a tiny model's steps can all fit
    # in one, so the test has the worker look at every step, wherever the machine is fast.
    monkeypatch.setattr(lifecycle, "PROGRESS_INTERVAL", 0.0)
    settings = settings.model_copy(update={"diffusion_model": str(tiny_model), "job_poll_seconds": 0.01})
    user, job_id = queue(db, row(steps=6))

    def cancel_now(progress: Any) -> None:
        if progress.done == 1:
            with db.transaction() as session:
                job = session.get(Job, job_id)
                assert job is not None
                state.request_cancel(session, job)

    end, reports = run(settings, db, job_id, on_step=cancel_now)

    assert end == state.CANCELED
    assert max(r.done for r in reports if r.stage == "generate") < 6
    assert stored(settings, f"jobs/{job_id}/result.png", tmp_path) is None
    assert balance(db, user) == 3


def test_a_missing_model_fails_the_job_naming_the_setting_and_costs_nothing(
    settings: Settings, db: Database
) -> None:
    user, job_id = queue(db, row())  # no ANIMATICA_DIFFUSION_MODEL

    end, _reports = run(settings, db, job_id)

    assert end == state.FAILED
    error = load_job(db, job_id).error or ""
    assert "ANIMATICA_DIFFUSION_MODEL" in error and "/" not in error.split("ANIMATICA_DIFFUSION_MODEL")[0]
    assert balance(db, user) == 3


def test_a_picture_stored_with_the_job_is_the_requests_starting_picture(
    settings: Settings, db: Database, tiny_model: Path, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"diffusion_model": str(tiny_model)})
    start = tmp_path / "start.png"
    Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8)).save(start)
    options = row(operation="img2img", size=[64, 64], strength=0.5, pictures={"source": "init_image"})
    _user, job_id = queue(db, options, source_name="start.png", source_key="jobs/start/source.png")
    open_storage(settings.storage_url).put_file("jobs/start/source.png", start)
    seen: dict[str, bytes] = {}
    original = kinds.get(NAME).request

    def spy(worker_settings: Settings, execution: Any) -> dict[str, Any]:
        seen.update({slot: path.read_bytes() for slot, path in execution.inputs.items()})
        return original(worker_settings, execution)

    kind = kinds.get(NAME)
    kinds.register(replace(kind, request=spy))
    try:
        end, _reports = run(settings, db, job_id)
    finally:
        kinds.register(kind)

    assert end == state.SUCCEEDED, load_job(db, job_id).error
    assert seen == {"source": start.read_bytes()}


def test_a_job_without_its_picture_fails_before_any_model_loads(settings: Settings, db: Database) -> None:
    user, job_id = queue(db, row(operation="img2img", pictures={"source": "init_image"}))

    end, reports = run(settings, db, job_id)

    assert end == state.FAILED
    assert "source picture" in (load_job(db, job_id).error or "")
    assert not [r for r in reports if getattr(r, "stage", "") == "generate"]
    assert balance(db, user) == 3
