"""What the VGG19 perceptual loss costs per training step compared with the pixel-pyramid fallback.

Trains a few steps of the ``demo-64`` config on procedural data, once with the fallback and once
with a VGG19 (random weights stand in for ImageNet ones: the cost is the same), and prints one
JSON line with CPU seconds per step for each. CPU time rather than wall time, on one thread, so
the figure holds on a machine shared with other work.

    python bench/perceptual_cost.py [--steps 4] [--batch 8]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from animatica.device import use_threads
from animatica.fomm.config import load_config
from animatica.training.losses import VGG19Features
from animatica.training.synth import synthesize
from animatica.training.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "src" / "animatica" / "fomm" / "configs" / "demo-64.yaml"


def _cpu_seconds_per_step(data: Path, out: Path, vgg: Path | None, steps: int, batch: int) -> float:
    trainer = Trainer(load_config(CONFIG), data, out, vgg_weights=vgg, device="cpu", batch_size=batch)
    batch = next(iter(trainer._loader()))
    trainer.step(batch)  # warm-up: first calls allocate and pick kernels
    started = time.process_time()
    for _ in range(steps):
        trainer.step(batch)
    return (time.process_time() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    use_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = synthesize(root / "data", videos=8, seed=0, size=64, test_videos=0)
        vgg = root / "vgg19-random.pth"
        torch.manual_seed(0)
        torch.save({f"features.{k}": v for k, v in VGG19Features().features.state_dict().items()}, vgg)
        pixel = _cpu_seconds_per_step(data, root / "a", None, args.steps, args.batch)
        with_vgg = _cpu_seconds_per_step(data, root / "b", vgg, args.steps, args.batch)
    print(
        json.dumps(
            {
                "config": "demo-64",
                "batch": args.batch,
                "threads": 1,
                "cpu_s_per_step_pixel": round(pixel, 3),
                "cpu_s_per_step_vgg19": round(with_vgg, 3),
                "vgg19_over_pixel": round(with_vgg / pixel, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
