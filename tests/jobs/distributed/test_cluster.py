"""Jobs over real brokers and separate worker processes: the output of one process, no job lost."""

from pathlib import Path
from typing import Any

import pytest
from tests.jobs.distributed.media_inputs import assert_looks_the_same, decode_video, face_inputs

from animatica.jobs import state
from animatica.jobs.distributed import plans
from animatica.jobs.segments import segments_prefix

pytestmark = pytest.mark.slow


def _single_process_run(source: Path, driving: Path, output: Path, options: dict[str, Any]) -> Path:
    """The reference: the ordinary pipeline in this process, with the workers' thread count."""
    import torch

    from animatica.pipeline import AnimationRequest, animate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        animate(AnimationRequest(source, driving, output, engine="fomm", **options))
    finally:
        torch.set_num_threads(threads)
    return output


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_segments_on_two_workers_look_like_the_single_process_run(
    broker: str, make_cluster: Any, tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    # The workers find the FOMM weights in their settings, as in a deployment.
    cluster = make_cluster(broker, workers=2, fomm_checkpoint=str(tiny_fomm_checkpoint))
    source, driving = face_inputs(tmp_path, frames=26, size=64)  # 8 + 8 + 8 + 2 frames
    options = {"relative": True}
    single = _single_process_run(
        source, driving, tmp_path / "single.mp4", {**options, "checkpoint": str(tiny_fomm_checkpoint)}
    )
    cluster.wait_ready()
    user = cluster.user("alice", credits=2)
    job_id = cluster.submit(user, source, driving, "fomm", options)
    job = cluster.wait(job_id)
    assert job.status == state.SUCCEEDED, (job.error, cluster.logs())
    assert job.frames == 26
    result = tmp_path / "result.mp4"
    assert job.result_key
    cluster.storage.get_file(job.result_key, result)
    assert len(decode_video(single)) == 26
    # Each segment is encoded by its own worker, so the result equals the single run to the eye,
    # not to the bit (`assert_looks_the_same`).
    assert_looks_the_same(single, result)
    parts = cluster.segments(job_id)
    assert [(p.start, p.stop, p.status, p.frames) for p in parts] == [
        (0, 8, "done", 8),
        (8, 16, "done", 8),
        (16, 24, "done", 8),
        (24, 26, "done", 2),
    ]
    workers = {w.split(":")[0] for w in _workers(cluster, job_id)}
    assert workers == {"w1@test", "w2@test"}, "both worker processes should have animated segments"
    assert not list((cluster.folder / "files" / segments_prefix(job_id)).glob("*")), "segments are cleaned up"
    with cluster.db.transaction() as session:
        from animatica.db import ledger

        assert ledger.balance(session, user) == 1  # the credit was consumed once


def _workers(cluster: Any, job_id: str) -> list[str]:
    from sqlalchemy import select

    seg = plans.segments
    with cluster.db.transaction() as session:
        return list(session.scalars(select(seg.c.worker).where(seg.c.job_id == job_id)).all())
