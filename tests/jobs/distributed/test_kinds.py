"""A kind declared in a module of its own runs on real Celery workers as one task, through the same
lifecycle as on the service's runner; the workers import it because ``job_kinds`` names it."""

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from animatica.db import ledger
from animatica.jobs import state
from animatica.jobs.distributed.dispatch import enqueue

pytestmark = pytest.mark.slow

MODULE = "tests.jobs.thumbnail_kind"
REPO = Path(__file__).resolve().parents[3]


def test_a_declared_kind_runs_to_success_on_celery_workers(make_cluster: Any, tmp_path: Path) -> None:
    from tests.conftest import add_job, write_png

    cluster = make_cluster("rabbitmq", workers=0, job_kinds=MODULE)
    # The workers import the kind's module by name, from the repository.
    cluster.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), cluster.env.get("PYTHONPATH")]))
    cluster.start_worker("w1")
    cluster.wait_ready()
    user = cluster.user("alice", credits=2)
    job_id = uuid.uuid4().hex
    cluster.storage.put_file(f"jobs/{job_id}/source.png", write_png(tmp_path / "face.png", (120, 90)))
    add_job(cluster.db, user, job_id, engine="", kind="thumbnail")
    assert enqueue(cluster.settings, cluster.db, job_id, 0)
    job = cluster.wait(job_id)
    assert job.status == state.SUCCEEDED, (job.error, cluster.logs())
    assert job.kind == "thumbnail" and job.result_key == f"jobs/{job_id}/result.png"
    result = tmp_path / "result.png"
    cluster.storage.get_file(job.result_key, result)
    with Image.open(result) as picture:
        assert picture.format == "PNG" and picture.size == (32, 24)
    assert cluster.segments(job_id) == []  # one task, no plan
    with cluster.db.read() as session:
        assert ledger.balance(session, user) == 1  # the credit was consumed once
