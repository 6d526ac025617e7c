"""Train the expression reader the cross-identity evaluation uses, and measure it.

The reader (``training/faces/regressor.py``) regresses the rendered mouth opening and yaw from a
64-pixel face. Recipe: the training split of the seed-1 faces dataset of the vaegan demo's
recipe (256 people x 2 clips x 24 frames), 3,000 Adam steps of 64 frames on one CPU thread.
Measured on the cross-identity pairs of a held-out seed: correlation over each pair's frames
between the reader's values and the rendered parameters, for the truth frames (how well it reads
the person the engine should draw) and the driving frames (another person making the same
motion: what copying the driving clip scores). One JSON line; ``--ship`` writes the weights
beside the module.

    python bench/train_expression_reader.py --data W/train-data --held-out W/held-out [--ship]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def pair_correlations(reader, held_out: Path, max_pairs: int | None) -> dict[str, float]:
    from animatica.training.cross_identity import _frames, _read_params, correlation, read_cross_dataset

    dataset = read_cross_dataset(held_out)
    found: dict[str, list[float]] = {}
    for pair in dataset.pairs[:max_pairs]:
        params = _read_params(dataset.root, pair.driving)["frames"]
        for kind, path in (("truth", pair.truth), ("driving", pair.driving)):
            read = reader.read(_frames(path))
            for name in ("mouth_open", "yaw"):
                value = correlation(read[name], np.array([f[name] for f in params]))
                if value is not None:
                    found.setdefault(f"{kind}_{name}", []).append(value)
    return {key: round(float(np.mean(values)), 3) for key, values in found.items()}


def main() -> None:
    from animatica.training.faces.regressor import SHIPPED, save_reader, train_reader, training_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--held-out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-pairs", type=int, default=32)
    parser.add_argument("--ship", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    images, targets, people = training_split(args.data)
    loaded = time.perf_counter() - started
    started = time.perf_counter()
    reader = train_reader(images, targets, steps=args.steps)
    report = {
        "frames": len(images),
        "people": len(set(people)),
        "steps": args.steps,
        "load_seconds": round(loaded, 1),
        "train_seconds": round(time.perf_counter() - started, 1),
        **pair_correlations(reader, args.held_out, args.max_pairs),
    }
    out = SHIPPED if args.ship else args.out
    if out is not None:
        meta = {"data": "faces seed 1, train split", "steps": args.steps, "frames": len(images)}
        report["saved"] = str(save_reader(reader, out, meta))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
