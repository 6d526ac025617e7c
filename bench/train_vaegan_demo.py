"""Train the shipped ``vaegan-demo`` model from nothing, reproducibly, and measure it across identities.

The recipe (the same as these commands, which the README lists)::

    animatica data synth --kind faces --out W/train-data --people 256 --clips-per-person 2 --frames 24 \\
        --seed 1 --test-people 2
    animatica data synth --kind faces --out W/held-out --people 2 --clips-per-person 2 --frames 32 \\
        --seed 2 --test-people 8
    animatica train --config vaegan-demo --data W/train-data --out-dir W/run --device cpu --max-minutes 16

``vaegan-demo`` is the conditioned model (its decoder sees the source photo; trained on
cross-identity items rendered from the training people, see ``training/faces/pairs.py``). On a
shared machine one torch thread (``--threads 1``) keeps the step time steady where two threads
wait on each other. Then the inference part is exported (encoder, decoder, config: under 20 MB)
and measured on the held-out people of the unseen seed with the cross-identity evaluator (``animatica evaluate
--cross-identity``: person A's first test frame animated by person B's clip, against the rendered
truth, beside copying the source photo and copying the driving frame), for the plain engine and
with ``keep_detail``. One JSON line; ``--ship`` copies the model to ``src/animatica/vaegan/weights/``.

    python bench/train_vaegan_demo.py --work /tmp/vaegan-demo [--ship] [--threads 1] [--max-pairs 16]
    python bench/train_vaegan_demo.py --work W --measure CHECKPOINT   # measure only
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "animatica" / "vaegan" / "weights" / "vaegan-demo.pth"
TRAIN = ["--people", "256", "--clips-per-person", "2", "--frames", "24", "--seed", "1", "--test-people", "2"]
HELD_OUT = ["--people", "2", "--clips-per-person", "2", "--frames", "32", "--seed", "2", "--test-people", "8"]


def _cli(*args: str, threads: int) -> None:
    env = {"ANIMATICA_TORCH_THREADS": str(threads), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "animatica.cli", *args], check=True, env=env)


KEYS = ("l1", "baseline_source_l1", "baseline_driving_l1", "l1_ratio", "expression_correlation",
        "mouth_correlation", "yaw_correlation", "landmark_expression_correlation",
        "baseline_driving_expression_correlation", "reader_check", "identity_distance",
        "landmark_distance", "no_face_rate", "pairs", "engine_ms_per_frame")  # fmt: skip


def measure(
    checkpoint: Path, held_out: Path, keep_detail: bool = False, max_pairs: int | None = None
) -> dict:
    """The cross-identity figures (``animatica evaluate --cross-identity``) of the model."""
    from animatica.engines.vaegan import VaeganEngine
    from animatica.training.cross_identity import evaluate_cross_identity

    engine = VaeganEngine.load(checkpoint, device="cpu", precision="fp32", keep_detail=keep_detail)
    report = evaluate_cross_identity(engine, held_out, checkpoint=str(checkpoint), max_pairs=max_pairs)
    return {key: report.get(key) for key in KEYS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=16.0)
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--max-pairs", type=int, default=None, help="measure on the first pairs only")
    parser.add_argument("--measure", type=Path, default=None, help="only measure this checkpoint")
    args = parser.parse_args()
    work = args.work
    train_data, held_out = work / "train-data", work / "held-out"
    report: dict = {}
    if args.measure is None:
        started = time.perf_counter()
        if not train_data.is_dir():
            _cli("data", "synth", "--kind", "faces", "--out", str(train_data), *TRAIN, threads=args.threads)
        if not held_out.is_dir():
            _cli("data", "synth", "--kind", "faces", "--out", str(held_out), *HELD_OUT, threads=args.threads)
        report["data_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        _cli("train", "--config", "vaegan-demo", "--data", str(train_data), "--out-dir", str(work / "run"),
             "--device", "cpu", "--max-minutes", str(args.minutes), threads=args.threads)  # fmt: skip
        report["train_seconds"] = round(time.perf_counter() - started, 1)
        from animatica.vaegan.checkpoint import export_inference

        checkpoint = export_inference(work / "run" / "checkpoint.pth", work / "vaegan-demo.pth")
    else:
        checkpoint = args.measure
    import torch

    torch.set_num_threads(args.threads)
    report["steps"] = int(torch.load(checkpoint, weights_only=True)["step"])
    report["megabytes"] = round(checkpoint.stat().st_size / 1e6, 2)
    report["plain"] = measure(checkpoint, held_out, max_pairs=args.max_pairs)
    report["keep_detail"] = measure(checkpoint, held_out, keep_detail=True, max_pairs=args.max_pairs)
    if args.ship:
        shutil.copyfile(checkpoint, SHIPPED)
        report["shipped"] = str(SHIPPED)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
