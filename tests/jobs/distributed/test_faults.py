"""Fault tolerance and fairness on real brokers: a killed worker, a restarted broker, priorities, caps."""

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from tests.jobs.distributed.media_inputs import assert_looks_the_same, face_inputs
from tests.jobs.distributed.test_cluster import _single_process_run

from animatica.jobs import state
from animatica.jobs.distributed import plans

pytestmark = pytest.mark.slow
# Imported by the workers only: importing it here would gate this process's animation kind too.
GATED_MODULE = "tests.jobs.distributed.gated_kind"
GATE = "ANIMATICA_TEST_SEGMENT_GATE"  # the file it waits on, as gated_kind reads it


def _same_video(cluster: Any, job: Any, single: Path, folder: Path) -> None:
    """The job's result shows the single run's video: every frame once, in place, with its sound
    (to the eye, not to the bit: each segment was encoded by its own worker)."""
    assert job.status == state.SUCCEEDED, (job.error, cluster.logs())
    result = folder / "result.mp4"
    cluster.storage.get_file(job.result_key, result)
    assert_looks_the_same(single, result)


def _weights(checkpoint: Path) -> dict[str, Any]:
    """The reference run names the checkpoint; the workers take it from their settings."""
    return {"checkpoint": str(checkpoint)}


def _running_segment(cluster: Any, job_id: str, timeout: float = 60.0) -> plans.SegmentRow:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for part in cluster.segments(job_id):
            if part.status == plans.QUEUED and part.attempts == 1:
                return part
        time.sleep(0.02)
    raise AssertionError(f"no segment started\n{cluster.logs()}")


def _worker_pid(cluster: Any, job_id: str, index: int) -> int:
    from sqlalchemy import select

    seg = plans.segments
    with cluster.db.transaction() as session:
        worker = session.scalar(select(seg.c.worker).where(seg.c.job_id == job_id, seg.c.idx == index))
    return int(str(worker).rsplit(":", 1)[1])


def test_killing_a_worker_mid_segment_loses_nothing(
    make_cluster: Any, tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    cluster = make_cluster(
        "rabbitmq",
        workers=0,
        segment_seconds=5.0,
        fomm_checkpoint=str(tiny_fomm_checkpoint),
        job_kinds=GATED_MODULE,
    )
    gate = tmp_path / "segments-wait"
    gate.touch()
    cluster.env[GATE] = str(gate)
    for name in ("w1", "w2"):
        cluster.start_worker(name)
    source, driving = face_inputs(tmp_path, frames=120, size=64)  # 3 segments of 40 frames
    single = _single_process_run(source, driving, tmp_path / "single.mp4", _weights(tiny_fomm_checkpoint))
    cluster.wait_ready()
    job_id = cluster.submit(cluster.user("bob"), source, driving, "fomm", {})
    victim = _running_segment(cluster, job_id)  # started, and held at the gate: it cannot finish
    pid = _worker_pid(cluster, job_id, victim.index)
    os.kill(pid, signal.SIGKILL)  # the pool process animating the segment
    killed = next(p for p in cluster.segments(job_id) if p.index == victim.index)
    gate.unlink()
    job = cluster.wait(job_id)
    _same_video(cluster, job, single, tmp_path)
    parts = {p.index: p for p in cluster.segments(job_id)}
    assert all(p.status == plans.DONE for p in parts.values())
    assert killed.status == plans.QUEUED, "the worker was killed before the segment finished"
    assert parts[victim.index].attempts >= 2  # so it ran again, and its frames appear once
    assert sum(p.frames or 0 for p in parts.values()) == 120  # each segment's frames counted once


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_broker_restart_during_a_job_loses_nothing(
    make_cluster: Any, tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    try:
        _rabbitmqctl("status")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"rabbitmqctl cannot control the local RabbitMQ ({exc})")
    cluster = make_cluster(
        "rabbitmq", workers=2, segments_per_user=2, fomm_checkpoint=str(tiny_fomm_checkpoint)
    )
    source, driving = face_inputs(tmp_path, frames=64, size=64)  # 8 segments, 2 in flight at a time
    single = _single_process_run(source, driving, tmp_path / "single.mp4", _weights(tiny_fomm_checkpoint))
    cluster.wait_ready()
    job_id = cluster.submit(cluster.user("carol"), source, driving, "fomm", {})
    _running_segment(cluster, job_id)
    try:
        _rabbitmqctl("stop_app")
        time.sleep(2)
    finally:
        _rabbitmqctl("start_app")
    job = cluster.wait(job_id, timeout=180)
    _same_video(cluster, job, single, tmp_path)
    assert all(p.status == plans.DONE for p in cluster.segments(job_id))


@pytest.mark.parametrize("broker", ["rabbitmq", "redis"])
def test_paid_job_overtakes_a_long_free_one(
    broker: str, make_cluster: Any, tmp_path: Path, tiny_fomm_checkpoint: Path
) -> None:
    # One worker and no cap worth the name: only message priority can put the paid job first.
    cluster = make_cluster(
        broker, workers=1, segments_per_user=100, fomm_checkpoint=str(tiny_fomm_checkpoint)
    )
    long_folder, short_folder = tmp_path / "long", tmp_path / "short"
    long_folder.mkdir()
    short_folder.mkdir()
    options: dict[str, Any] = {}
    long_job = face_inputs(long_folder, frames=80, size=64)  # 10 segments
    short_job = face_inputs(short_folder, frames=16, size=64)  # 2 segments
    cluster.wait_ready()
    free_id = cluster.submit(cluster.user("free-user"), *long_job, "fomm", options)
    while len([p for p in cluster.segments(free_id) if p.status == plans.QUEUED]) < 10:
        time.sleep(0.05)  # every free segment is waiting in the queue before the paid job arrives
    paid_id = cluster.submit(cluster.user("paid-user", plan="pro"), *short_job, "fomm", options)
    paid = cluster.wait(paid_id)
    assert paid.status == state.SUCCEEDED, (paid.error, cluster.logs())
    left = [p.index for p in cluster.segments(free_id) if p.status != plans.DONE]
    assert len(left) >= 5, f"the paid job waited for the free one; free segments left: {left}"
    assert cluster.wait(free_id).status == state.SUCCEEDED


def test_segments_in_flight_are_capped_per_user(make_cluster: Any, tmp_path: Path) -> None:
    """Dispatch alone (no worker): a long job takes only its owner's slots, never other users'."""
    from animatica.jobs.distributed.stages import prepare
    from animatica.jobs.distributed.worker import Context

    cluster = make_cluster("rabbitmq", workers=0, segments_per_user=2)
    ctx = Context(cluster.settings, cluster.db, cluster.storage, os.getpid())
    source, driving = face_inputs(tmp_path, frames=40, size=64, audio=False)  # 5 segments
    alice, bob = cluster.user("alice"), cluster.user("bob")
    long_a = cluster.submit(alice, source, driving, "landmarks", {})
    second_a = cluster.submit(alice, source, driving, "landmarks", {})
    job_b = cluster.submit(bob, source, driving, "landmarks", {})
    for job_id in (long_a, second_a, job_b):
        prepare(ctx, job_id)

    def states(job_id: str) -> list[str]:
        return [p.status for p in cluster.segments(job_id)]

    assert states(long_a) == ["queued", "queued", "pending", "pending", "pending"]
    assert states(second_a) == ["pending"] * 5  # alice is at her cap
    assert states(job_b) == ["queued", "queued", "pending", "pending", "pending"]  # bob is not slowed
    assert cluster.job(long_a).status == state.RUNNING
