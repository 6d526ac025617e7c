"""What one step of Gatys style transfer costs on the CPU, per VGG variant and working size.

Random weights stand in for ImageNet ones (the cost is the same). Steps are timed between progress
callbacks, so loading the weights and computing the targets are left out; CPU seconds on one thread,
so the figure holds on a machine shared with other work. Prints one JSON line per (arch, size) with
the seconds per step and what the default 300 steps would take.

    python bench/style_transfer_cost.py [--steps 4] [--sizes 256 512]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from animatica.device import use_threads
from animatica.images.style import DEFAULT_STEPS, transfer_style
from animatica.vgg import VGGFeatures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()
    use_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in ("vgg16", "vgg19"):
            torch.manual_seed(0)
            trunk = VGGFeatures(arch, ("relu5_1",)).features.state_dict()
            path = Path(tmp) / f"{arch}.pth"
            torch.save({f"features.{k}": v for k, v in trunk.items()}, path)
            for size in args.sizes:
                content = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                style = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                marks: list[float] = []
                transfer_style(
                    content,
                    style,
                    path,
                    steps=args.steps + 1,
                    max_size=size,
                    progress=lambda _s, _n, marks=marks: marks.append(time.process_time()),
                )
                per_step = (marks[-1] - marks[0]) / (len(marks) - 1)
                print(
                    json.dumps(
                        {
                            "arch": arch,
                            "size": f"{size}x{size}",
                            "threads": 1,
                            "cpu_s_per_step": round(per_step, 2),
                            f"cpu_min_for_{DEFAULT_STEPS}_steps": round(per_step * DEFAULT_STEPS / 60, 1),
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
