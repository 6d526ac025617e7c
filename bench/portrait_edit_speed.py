"""How long one portrait edit takes once the networks are loaded and the photo prepared.

    python bench/portrait_edit_speed.py [--rounds N] [--threads T] [--json]

A portrait edit (``animatica edit``, the Edit page, ``POST /api/v1/edits``) is, after the first
one of a photo, the motion maths, one warping pass, one decoder pass (256 → 512) and the paste-back
into the photo. Random weights of the public shapes cost the same as the real ones. Measured in one
run, interleaved round by round so that load from other processes hits every variant alike:
 - preparing the photo once (face crop, appearance volume, keypoints, eye/lip openness);
 - one edit with the plain float32 networks;
 - one edit with the speed path (``liveportrait.fast.accelerate``), what the CLI and the service use;
 - a 2048x2048 float32 matrix product, the machine's yardstick (GFLOP/s).
Each figure is the best round, with the median beside it; then one JSON line.
"""

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage import data

from animatica.device import use_threads
from animatica.liveportrait.checkpoint import random_networks
from animatica.liveportrait.edit_options import PortraitEdit
from animatica.liveportrait.editing import PortraitEditor

EDITS = (PortraitEdit(yaw=10.0), PortraitEdit(pitch=-6.0, eyes=0.1), PortraitEdit(roll=8.0, lips=0.3))


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(seconds(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    use_threads(args.threads)
    photo = np.ascontiguousarray(data.astronaut())

    plain = random_networks(seed=0)
    from animatica.liveportrait.fast import accelerate

    fast = accelerate(random_networks(seed=0))
    editors: dict[str, PortraitEditor] = {}
    prepare: list[float] = []
    for name, networks in (("plain", plain), ("fast", fast)):
        started = time.perf_counter()
        editors[name] = PortraitEditor(networks, photo, crop=True)
        prepare.append(time.perf_counter() - started)
    for editor in editors.values():  # warm-up: first-call allocations and kernel choices
        editor.edit(EDITS[0])

    times: dict[str, list[float]] = {"plain": [], "fast": [], "matmul_gflops": []}
    for round_index in range(args.rounds):
        edit = EDITS[round_index % len(EDITS)]
        for name, editor in editors.items():
            times[name].append(seconds(lambda editor=editor, edit=edit: editor.edit(edit)))
        times["matmul_gflops"].append(matmul_gflops())

    gflops = max(times["matmul_gflops"])
    result = {
        "bench": "portrait_edit",
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "load_average": round(os.getloadavg()[0], 2),  # above the core count: shared, noisy
        "picture": f"{photo.shape[1]}x{photo.shape[0]}",
        "prepare_s": round(min(prepare), 3),
        "edit_plain_s": round(min(times["plain"]), 3),
        "edit_plain_median_s": round(statistics.median(times["plain"]), 3),
        "edit_fast_s": round(min(times["fast"]), 3),
        "edit_fast_median_s": round(statistics.median(times["fast"]), 3),
        "matmul_fp32_gflops": round(gflops, 1),
        # The plain edit's 1.23 TFLOP of convolutions (warping 342 + decoder 892) at the matmul rate:
        "plain_at_matmul_rate_s": round(1234e9 / (gflops * 1e9), 3),
    }
    if not args.json:
        for key, value in result.items():
            print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
