"""How well the face toolkit (dlib HOG detector + 68-point predictor) sees the synthetic faces.

    python bench/faces_detection.py [--people N] [--seed S] [--sizes 64,128,256] [--json]

For each size it renders, for N people of the seed's test split, the neutral first frame and one
later frame of a 32-frame clip (expression and pose under way), and reports the time to render a
frame, the detection rate of the quick HOG scan and the mean/median landmark error in % of the
inter-ocular distance (outer eye corners) against the renderer's own landmarks. 64 px faces
(about 32 px wide) are below the HOG window, so that size is measured on a 4x bicubic enlargement.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from animatica.training.faces.dataset import Person, identity_of, motion_of, scene_of
from animatica.training.faces.detection import measure
from animatica.training.faces.render import render_frame


def frames(seed: int, people: int, size: int, moving: bool):
    for index in range(people):
        person = Person("test", index, f"p{index:04d}")
        motion = motion_of(seed, person, 0, 32)
        frame = motion[int(np.random.default_rng([seed, index]).integers(1, 32))] if moving else motion[0]
        yield render_frame(identity_of(seed, person), scene_of(seed, person, 0), frame, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for size in (int(s) for s in args.sizes.split(",")):
        upscale = 4 if size < 100 else 1
        row = {}
        for label, moving in (("neutral", False), ("moving", True)):
            start, cpu = time.perf_counter(), time.process_time()
            rendered = list(frames(args.seed, args.people, size, moving))
            render_ms = 1000 * (time.perf_counter() - start) / len(rendered)
            render_cpu_ms = 1000 * (time.process_time() - cpu) / len(rendered)
            stats = measure(rendered, upscale=upscale)
            row[label] = {
                **stats.as_dict(),
                "upscale": upscale,
                "render_ms_per_frame": round(render_ms, 1),
                "render_cpu_ms_per_frame": round(render_cpu_ms, 1),
            }
            if not args.json:
                print(f"{size:4d} px {label:8s} {row[label]}")
        results[str(size)] = row
    machine = f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(json.dumps({"seed": args.seed, "people": args.people, "machine": machine, "results": results}))


if __name__ == "__main__":
    main()
