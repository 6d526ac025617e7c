"""Speed and quality of the weights-free face swap (the ``faceswap`` engine) on this machine.

    python bench/faceswap_speed.py [--json] [--frames N]

Speed: the engine alone (tracking, alignment, colour, blending; no decoding or encoding) on a
clip of the astronaut's head turning, placed in 640x360 and 1280x720 frames (the face about a
third of the frame high), for each blend. Each figure is frames per second of wall time and of
this process's CPU time: on a shared machine the CPU figure is what the engine costs; the wall
figure is what one busy run gave.

Quality: ``face.swap_quality`` on the same clips, swapping in a second person (an LFW face from
scikit-image, enlarged), and the reverse (the astronaut's photo into a clip of the LFW face):
identity distances (dlib ResNet, 0.6 separates people), expression correlation, jitter.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.face.conftest import move
from tests.face.swap_faces import astronaut_face, other_person

from animatica.engines.faceswap import FaceSwapEngine
from animatica.face.swap_quality import swap_quality


def clip(face: np.ndarray, size: tuple[int, int], frames: int) -> np.ndarray:
    """``face`` (a square head shot) scaled to 0.75 of the frame height, turning and drifting."""
    h, w = size
    side = int(h * 0.75)
    head = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BILINEAR))
    out = np.empty((frames, h, w, 3), np.uint8)
    for i in range(frames):
        phase = 2 * np.pi * i / frames
        moved = move(head, angle_deg=6 * np.sin(phase), shift=(side * 0.03 * np.sin(2 * phase), 0.0),
                     centre=(side / 2, side / 2))  # fmt: skip
        frame = np.full((h, w, 3), 110, np.uint8)
        y, x = (h - side) // 2, (w - side) // 2
        frame[y : y + side, x : x + side] = moved
        out[i] = frame
    return out


def speed(photo: np.ndarray, frames: np.ndarray, blend: str) -> dict[str, float]:
    engine = FaceSwapEngine(blend=blend)
    state = engine.prepare(photo, frames[0])
    engine.animate(state, frames[:3])  # models loaded, caches warm
    state = engine.prepare(photo, frames[0])
    wall, cpu = time.perf_counter(), time.process_time()
    engine.animate(state, frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"fps_wall": round(len(frames) / wall, 1), "fps_cpu": round(len(frames) / cpu, 1)}


def quality(photo: np.ndarray, frames: np.ndarray) -> dict[str, float]:
    engine = FaceSwapEngine()
    state = engine.prepare(photo, frames[0])
    swapped = engine.animate(state, frames)
    report = swap_quality(photo, iter(frames), iter(swapped)).to_dict()
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    astronaut, other = astronaut_face(400), other_person()
    flags = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f.startswith("avx512")})
    result: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor(),
            "avx512": flags,
            "load": os.getloadavg(),
        },
        "speed": {},
    }
    for size in ((360, 640), (720, 1280)):
        frames = clip(astronaut, size, args.frames)
        for blend in ("poisson", "feather"):
            result["speed"][f"{size[1]}x{size[0]} {blend}"] = speed(other, frames, blend)  # type: ignore[index]
    small = (360, 640)
    result["quality other photo -> astronaut clip"] = quality(other, clip(astronaut, small, args.frames))
    lfw_head = other_person(side=240, canvas=400)
    result["quality astronaut photo -> other clip"] = quality(astronaut, clip(lfw_head, small, args.frames))
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
