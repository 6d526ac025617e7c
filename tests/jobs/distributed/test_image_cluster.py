"""A picture on a real Celery worker: queued as the service queues it, made by a worker process that
took the operator's model settings (the Stable Diffusion model, the LoRA folder) from its own
environment at start-up, and the same picture, pixel for pixel, as the service's own runner makes
from the same request and seed: both draw on the CPU with one torch thread. The worker's log holds
no progress bars or deprecation notices of the diffusion libraries."""

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from animatica.db import ledger
from animatica.jobs import image, kinds, state
from animatica.jobs.lifecycle import announce

pytestmark = pytest.mark.slow

pytest.importorskip("diffusers", reason="the images extra is not installed")


def _models(folder: Path) -> tuple[Path, Path]:
    """A tiny random-weight SD pipeline and a LoRA folder with one file for it."""
    from tests.images.tiny_models import build_tiny_lora, build_tiny_pipeline

    model = build_tiny_pipeline(folder / "models", "text2img")
    build_tiny_lora(folder / "loras" / "ink.safetensors", model)
    return model, folder / "loras"


def test_a_picture_made_by_a_celery_worker_is_the_one_the_runner_makes(
    make_cluster: Any, tmp_path: Path
) -> None:
    import torch

    from animatica.images.models import ImageModels
    from animatica.service.images import ImageForm, checked_row

    model, loras = _models(tmp_path)
    cluster = make_cluster("redis", workers=1, diffusion_model=str(model), lora_dir=str(loras), device="cpu")
    form = ImageForm(prompt="a lighthouse at dusk", size="96x64", steps=3, loras=["ink.safetensors:0.8"])
    row = checked_row(form, ImageModels.from_settings(cluster.settings), seed=1234)

    kind = kinds.get(image.NAME)
    here = tmp_path / "here.png"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker's process (torch_threads=1)
    try:
        kind.run(kind.request(cluster.settings, image.execution(here, row)), lambda _p: None, lambda: False)
    finally:
        torch.set_num_threads(threads)

    cluster.wait_ready()
    user = cluster.user("painter", credits=2)
    job_id = uuid.uuid4().hex
    with cluster.db.transaction() as session:
        state.create(
            session,
            job_id=job_id,
            user_id=user,
            engine=image.ENGINE,
            options=row,
            priority=0,
            source_name="a lighthouse at dusk",
            source_key=None,
            kind=image.NAME,
            cost=image.COST,
        )

    def no_local_runner() -> None:
        raise AssertionError("with a broker set, a job goes to the broker, not to a local runner")

    announce(cluster.settings, cluster.db, job_id, 0, no_local_runner)
    job = cluster.wait(job_id, timeout=180)
    assert job.status == state.SUCCEEDED, (job.error, cluster.logs())
    assert job.result_key == f"jobs/{job_id}/{image.RESULT}" and job.frames == 1
    there = tmp_path / "there.png"
    cluster.storage.get_file(job.result_key, there)
    with Image.open(here) as a, Image.open(there) as b:
        assert a.size == b.size == (96, 64)
        mine, theirs = np.asarray(a), np.asarray(b)
    assert mine.std() > 0, "the tiny model should draw something, not a flat picture"
    assert np.array_equal(mine, theirs), f"{np.count_nonzero(mine != theirs)} values differ"
    assert cluster.segments(job_id) == []  # one task, no plan
    with cluster.db.read() as session:
        assert ledger.balance(session, user) == 1  # one credit, consumed once
    log = (cluster.folder / "w1.log").read_text()
    assert "Loading pipeline components" not in log, "the libraries' progress bars fill the worker's log"
    assert "torch_dtype" not in log
