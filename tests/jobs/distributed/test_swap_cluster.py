"""A face swap on real Celery workers: planned once, its segments swapped by two worker processes
and joined in order, through the same lifecycle as an animation; the result shows what the
single-process run shows.

Each segment is encoded by its own worker and restarts the landmark smoothing at its seam (from
the plan's prepared photo), so the comparison is by PSNR with the single run, not bit for bit
(40 dB measured; 35 asked). The clip is silent: the sound's join is the animation's, tested there.
"""

import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from tests.face.swap_faces import write_actor_inputs
from tests.jobs.distributed.media_inputs import decode_video, frame_times, psnr

from animatica.db import ledger
from animatica.jobs import face_swap, kinds, state
from animatica.jobs.distributed import plans
from animatica.jobs.distributed.dispatch import enqueue

pytestmark = pytest.mark.slow

SIDE = 128


def test_a_swap_in_segments_on_two_workers_looks_like_the_single_process_run(
    make_cluster: Any, tmp_path: Path
) -> None:
    from tests.conftest import add_job

    cluster = make_cluster("redis", workers=2)
    photo, clip = write_actor_inputs(tmp_path, 20, SIDE, every=2)  # 8 + 8 + 4 frames
    options = {
        "which": "largest",
        "fps": 8.0,
        "source_name": "someone.png",
        "max_frames": 121,
        "frame_rate": 8.0,
    }
    kind = kinds.get(face_swap.NAME)
    single = tmp_path / "single.mp4"
    kind.run(
        kind.request(cluster.settings, face_swap.execution(photo, clip, single, "faceswap", options)),
        lambda _p: None,
        lambda: False,
    )
    cluster.wait_ready()
    user = cluster.user("alice", credits=2)
    job_id = uuid.uuid4().hex
    cluster.storage.put_file(f"jobs/{job_id}/source.png", photo)
    cluster.storage.put_file(f"jobs/{job_id}/driving.mp4", clip)
    add_job(
        cluster.db,
        user,
        job_id,
        engine="faceswap",
        options=options,
        kind=face_swap.NAME,
        source_name="someone.png",
        driving_name="actor.mp4",
        driving_key=f"jobs/{job_id}/driving.mp4",
    )
    assert enqueue(cluster.settings, cluster.db, job_id, 0)
    job = cluster.wait(job_id, timeout=300)
    assert job.status == state.SUCCEEDED, (job.error, cluster.logs())
    assert job.frames == 20 and job.result_key == f"jobs/{job_id}/result.mp4"
    result = tmp_path / "result.mp4"
    cluster.storage.get_file(job.result_key, result)
    before, after = decode_video(single), decode_video(result)
    assert len(after) == len(before) == 20
    assert frame_times(result) == frame_times(single)
    worst = min(psnr(a, b) for a, b in zip(before, after, strict=True))
    assert worst >= 35.0, f"a frame is only {worst:.1f} dB from the single run's"
    with cluster.db.transaction() as session:
        parts = plans.job_segments(session, job_id)
        column = plans.segments.c.worker
        names = session.scalars(select(column).where(plans.segments.c.job_id == job_id)).all()
    workers = {name.split(":")[0] for name in names if name}
    assert [(p.start, p.stop, p.status) for p in parts] == [(0, 8, "done"), (8, 16, "done"), (16, 20, "done")]
    assert workers == {"w1@test", "w2@test"}, "both worker processes should have swapped segments"
    with cluster.db.read() as session:
        assert ledger.balance(session, user) == 1  # one credit for the whole job, consumed once
