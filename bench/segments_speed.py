"""Segment-parallel jobs: 1 worker vs 2 workers, and the cost of segmenting, measured in one run.

    python bench/segments_speed.py [--engine landmarks|fomm] [--checkpoint K] [--seconds 60]
                                   [--broker amqp://…] [--json]

Inputs are the demo's: the astronaut photo and a generated talking-head driving video with an
AAC voice track, ``--seconds`` long at 25 fps. The engine is ``landmarks`` (stateful: each
segment starts 12 frames early) or ``fomm`` (stateless; without ``--checkpoint`` a vox-256 model
with random weights, which costs what the real one does). Runs:
  A. the single-process pipeline on one core (no segments);
  B. one Celery worker process (one core) with 5 s segments;
  C. two Celery worker processes (one core each) with 5 s segments.
Prints wall times and the ratios B/A (cost of segmenting: prepare, tasks and storage round trips,
warm-up frames, one encoder start per segment, the join's packet copy) and B/C (speed-up from the
second worker). Workers are timed started, as deployed ones are: the clock starts once each has
loaded its engines. ``--repeat N`` runs A, B and C N times and keeps each one's best time, for a
machine that other work shares. Needs the broker to answer; the database is a SQLite file in a
temporary folder.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from PIL import Image

from animatica.bench import machine, random_checkpoint
from animatica.demo import demo_source, write_demo_driving


def make_inputs(folder: Path, seconds: int) -> tuple[Path, Path]:
    source = folder / "source.png"
    Image.fromarray(demo_source()).save(source)
    return source, write_demo_driving(folder / "driving.mp4", seconds=seconds)


def single_process(source: Path, driving: Path, engine: str, checkpoint: str | None, out: Path) -> float:
    from animatica.device import use_threads
    from animatica.pipeline import AnimationRequest, animate, preload

    use_threads(1)
    # Warm, like the workers: the engine and its models are loaded before the clock starts.
    preload(engine, **({"checkpoint": checkpoint} if engine == "fomm" else {}))
    started = time.perf_counter()
    animate(AnimationRequest(source, driving, out, engine=engine, checkpoint=checkpoint))
    return time.perf_counter() - started


def cluster_run(
    source: Path, driving: Path, engine: str, checkpoint: str | None, broker: str, workers: int, folder: Path
) -> float:
    from animatica.db import Database, upgrade_to_head
    from animatica.db.models import Job
    from animatica.jobs import state
    from animatica.jobs.distributed.dispatch import enqueue
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
    }
    if checkpoint:
        values["fomm_checkpoint"] = str(Path(checkpoint).resolve())  # workers take weights from settings
    settings = Settings(**values)
    db = Database(settings.database_url)
    upgrade_to_head(db.engine)
    storage = open_storage(settings.storage_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANIMATICA_")}
    env.update({f"ANIMATICA_{k.upper()}": v for k, v in values.items()})
    processes = []
    for index in range(workers):
        log = (folder / f"w{index}.log").open("wb")
        code = (
            f"from animatica.jobs.distributed.worker import run_worker; run_worker(hostname='b{index}@bench')"
        )
        processes.append(
            subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        for index in range(workers):
            # A started worker, not a starting one: its pool process has loaded the engines.
            while b"job kinds warmed" not in (folder / f"w{index}.log").read_bytes():
                time.sleep(0.2)
        user = signup(db, "bench", "bench-password", 5)
        job_id = uuid.uuid4().hex
        storage.put_file(f"jobs/{job_id}/source.png", source)
        storage.put_file(f"jobs/{job_id}/driving.mp4", driving)
        started = time.perf_counter()
        with db.transaction() as session:
            state.create(
                session, job_id=job_id, user_id=user, engine=engine, options={},
                priority=0, source_name="s.png", driving_name="d.mp4",
                source_key=f"jobs/{job_id}/source.png", driving_key=f"jobs/{job_id}/driving.mp4",
            )  # fmt: skip
        enqueue(settings, db, job_id, 0)
        while True:
            with db.transaction() as session:
                job = session.get(Job, job_id)
                assert job is not None
                if job.status in state.FINAL:
                    if job.status != state.SUCCEEDED:
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
    parser.add_argument("--engine", choices=["landmarks", "fomm"], default="landmarks")
    parser.add_argument("--checkpoint", help="FOMM checkpoint (default: vox-256 with random weights)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each setup; the best time is kept")
    parser.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="animatica-bench-") as tmp:
        folder = Path(tmp)
        checkpoint = args.checkpoint
        if args.engine == "fomm" and checkpoint is None:
            checkpoint = str(random_checkpoint("vox-256", folder))
        source, driving = make_inputs(folder, args.seconds)
        frames = args.seconds * 25
        a = b = c = float("inf")
        for run in range(max(1, args.repeat)):
            a = min(a, single_process(source, driving, args.engine, checkpoint, folder / f"single{run}.mp4"))
            b = min(
                b, cluster_run(source, driving, args.engine, checkpoint, args.broker, 1, folder / f"one{run}")
            )
            c = min(
                c, cluster_run(source, driving, args.engine, checkpoint, args.broker, 2, folder / f"two{run}")
            )
    report = {
        "engine": args.engine,
        "frames": frames,
        "seconds_single": round(a, 1),
        "seconds_1_worker": round(b, 1),
        "seconds_2_workers": round(c, 1),
        "best_of": max(1, args.repeat),
        "segmenting_cost": round(b / a, 3),
        "speedup_2_workers": round(b / c, 3),
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.engine}: {frames} frames ({args.seconds} s at 25 fps), {report['machine']}")
    if args.repeat > 1:
        print(f"best of {args.repeat} runs each")
    print(f"A single process, no segments : {a:7.1f} s  ({frames / a:5.1f} fps)")
    print(f"B 1 worker, 5 s segments      : {b:7.1f} s  ({frames / b:5.1f} fps)")
    print(f"C 2 workers, 5 s segments     : {c:7.1f} s  ({frames / c:5.1f} fps)")
    print(f"cost of segmenting  B/A = {b / a:.2f}")
    print(f"speed-up of 2nd worker B/C = {b / c:.2f}")


if __name__ == "__main__":
    main()
