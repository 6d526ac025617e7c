"""Segment-parallel jobs: 1 worker vs 2 workers, and the cost of segmenting, measured in one run.

    python bench/segments_speed.py CHECKPOINT [--seconds 60] [--fps 25] [--broker amqp://…]

Runs, on the same 60 s driving video and a FOMM checkpoint (the engine is stateless, so every
run gives the same frames):
  A. the single-process pipeline on one core (no segments);
  B. one Celery worker process (one core) with 5 s segments;
  C. two Celery worker processes (one core each) with 5 s segments.
Prints wall times and the ratios A/B (cost of segmenting: prepare, lossless segment files,
the join's encode, model load per process) and B/C (speed-up from the second worker). Needs
the broker to answer; the database is a SQLite file in a temporary folder.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_inputs(folder: Path, seconds: int, fps: int, size: int = 256) -> tuple[Path, Path]:
    yy, xx = np.mgrid[0:size, 0:size]
    source = folder / "source.png"
    from PIL import Image

    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(source)
    driving = folder / "driving.mp4"
    with av.open(str(driving), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            cx, cy = size / 2 + 40 * np.sin(i / 9), size / 2 + 30 * np.cos(i / 13)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < (size / 5) ** 2)[..., None]
            picture = np.where(disc, 230, np.stack([xx, yy, np.full_like(xx, 90)], -1) % 256)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return source, driving


def single_process(source: Path, driving: Path, checkpoint: str, out: Path) -> float:
    import torch

    from animatica.pipeline import AnimationRequest, animate

    torch.set_num_threads(1)
    started = time.perf_counter()
    animate(AnimationRequest(source, driving, out, engine="fomm", checkpoint=checkpoint))
    return time.perf_counter() - started


def cluster_run(
    source: Path, driving: Path, checkpoint: str, broker: str, workers: int, folder: Path
) -> float:
    from animatica.db import Database, upgrade_to_head
    from animatica.db.models import Job
    from animatica.jobs import store
    from animatica.jobs.distributed import enqueue_job
    from animatica.service.accounts import signup
    from animatica.settings import Settings
    from animatica.storage import open_storage

    folder.mkdir()
    values = {
        "home": str(folder / "home"),
        "database_url": f"sqlite:///{folder / 'db.sqlite'}",
        "storage_url": (folder / "files").as_uri(),
        "broker_url": broker,
        "celery_queue": f"animatica-bench-{uuid.uuid4().hex[:8]}",
        "torch_threads": "1",
        "segment_seconds": "5",
        "segments_per_user": "4",
        "fomm_checkpoint": str(Path(checkpoint).resolve()),  # workers take the weights from settings
    }
    settings = Settings(**values)
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    storage = open_storage(settings.storage_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMATICA_")}
    env.update({f"ANIMATICA_{k.upper()}": v for k, v in values.items()})
    processes = []
    for index in range(workers):
        log = (folder / f"w{index}.log").open("wb")
        code = f"from animatica.jobs.distributed import run_worker; run_worker(hostname='b{index}@bench')"
        processes.append(
            subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        for index in range(workers):
            while b" ready." not in (folder / f"w{index}.log").read_bytes():
                time.sleep(0.2)
        user = signup(db, "bench", "bench-password", 5)
        job_id = uuid.uuid4().hex
        storage.put_file(f"jobs/{job_id}/source.png", source)
        storage.put_file(f"jobs/{job_id}/driving.mp4", driving)
        started = time.perf_counter()
        with db.transaction() as session:
            store.create(
                session, job_id=job_id, user_id=user, engine="fomm", options={},
                priority=0, source_name="s.png", driving_name="d.mp4",
                source_key=f"jobs/{job_id}/source.png", driving_key=f"jobs/{job_id}/driving.mp4",
            )  # fmt: skip
        enqueue_job(settings, db, job_id, 0)
        while True:
            with db.transaction() as session:
                job = session.get(Job, job_id)
                assert job is not None
                if job.status in store.FINAL:
                    if job.status != store.SUCCEEDED:
                        raise SystemExit(f"job failed: {job.error}")
                    return time.perf_counter() - started
            time.sleep(0.1)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="animatica-bench-") as tmp:
        folder = Path(tmp)
        source, driving = make_inputs(folder, args.seconds, args.fps)
        frames = args.seconds * args.fps
        a = single_process(source, driving, args.checkpoint, folder / "single.mp4")
        b = cluster_run(source, driving, args.checkpoint, args.broker, 1, folder / "one")
        c = cluster_run(source, driving, args.checkpoint, args.broker, 2, folder / "two")
    print(f"{frames} frames ({args.seconds} s at {args.fps} fps), cores: {os.cpu_count()}")
    print(f"A single process, no segments : {a:7.1f} s  ({frames / a:5.1f} fps)")
    print(f"B 1 worker, 5 s segments      : {b:7.1f} s  ({frames / b:5.1f} fps)")
    print(f"C 2 workers, 5 s segments     : {c:7.1f} s  ({frames / c:5.1f} fps)")
    print(f"cost of segmenting  B/A = {b / a:.2f}")
    print(f"speed-up of 2nd worker B/C = {b / c:.2f}")


if __name__ == "__main__":
    main()
