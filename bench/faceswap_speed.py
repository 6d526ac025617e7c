"""Speed and quality of the weights-free face swap (the ``faceswap`` engine) on this machine.

    python bench/faceswap_speed.py [--json] [--frames N] [--long-seconds S]

Speed: the engine alone (tracking, alignment, colour, blending; no decoding or encoding) on a
clip of the astronaut's head turning, placed in 640x360 and 1280x720 frames (the head 0.75 of
the frame high, its face about a third), for each blend. Each figure is frames per second of
wall time and of this process's CPU time, and CPU milliseconds per frame: on a shared machine
the CPU figure is what the engine costs; the wall figure is what one busy run gave.

Memory: ``--long-seconds`` of 720p video at 30 fps (two minutes by default), made frame by frame
as it is swapped (never held whole, as the pipeline streams a real video), in chunks of 8 as
the pipeline hands them over. The process's resident memory is sampled every second of video;
a flat run has the same memory in its last quarter as in its first (``growth_mb``).

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

import cv2
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.face.swap_faces import astronaut_face, other_person

from animatica.engines.faceswap import FaceSwapEngine
from animatica.face.swap_quality import swap_quality


def moving_frame(canvas: np.ndarray, side: int, i: int, fps: float = 30.0) -> np.ndarray:
    """Frame ``i`` of an endless clip: the head of ``canvas`` (``side`` px, centred) turning every
    four seconds and drifting sideways once a minute, so no stretch of the video repeats another."""
    h, w = canvas.shape[:2]
    t = i / fps
    angle = 6 * np.sin(2 * np.pi * t / 4)
    shift = (0.25 * (w - side) * np.sin(2 * np.pi * t / 60), 0.02 * side * np.sin(2 * np.pi * t / 3))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += shift
    return cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def head_canvas(face: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, int]:
    h, w = size
    side = int(h * 0.75)
    head = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BILINEAR))
    canvas = np.full((h, w, 3), 110, np.uint8)
    y, x = (h - side) // 2, (w - side) // 2
    canvas[y : y + side, x : x + side] = head
    return canvas, side


def rss_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB (Linux's own accounting)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def memory(photo: np.ndarray, face: np.ndarray, seconds: float, fps: float = 30.0) -> dict[str, float]:
    """Swap a long 720p video made on the fly; resident memory sampled once per second of video."""
    canvas, side = head_canvas(face, (720, 1280))
    engine = FaceSwapEngine(fps=fps)
    state = engine.prepare(photo, canvas)
    total, chunk, every = round(seconds * fps), 8, round(fps)
    samples: list[float] = []
    wall = cpu = 0.0
    for start in range(0, total, chunk):
        frames = np.stack(
            [moving_frame(canvas, side, i, fps) for i in range(start, min(total, start + chunk))]
        )
        w0, c0 = time.perf_counter(), time.process_time()
        engine.animate(state, frames)
        wall, cpu = wall + time.perf_counter() - w0, cpu + time.process_time() - c0
        if start // every != (start + chunk) // every:
            samples.append(rss_mb()[0])
    quarter = max(1, len(samples) // 4)
    first, last = float(np.mean(samples[:quarter])), float(np.mean(samples[-quarter:]))
    return {
        "frames": total,
        "frames_unchanged": state.frames_unchanged,
        "samples": len(samples),
        "rss_first_quarter_mb": round(first, 1),
        "rss_last_quarter_mb": round(last, 1),
        "growth_mb": round(last - first, 1),
        "rss_peak_mb": round(rss_mb()[1], 1),
        "fps_wall": round(total / wall, 1),
        "fps_cpu": round(total / cpu, 1),
    }


def clip(face: np.ndarray, size: tuple[int, int], frames: int) -> np.ndarray:
    """The first ``frames`` frames of ``moving_frame``'s clip of ``face`` at ``size`` (h, w)."""
    canvas, side = head_canvas(face, size)
    return np.stack([moving_frame(canvas, side, i) for i in range(frames)])


def speed(photo: np.ndarray, frames: np.ndarray, blend: str) -> dict[str, float]:
    engine = FaceSwapEngine(blend=blend)
    state = engine.prepare(photo, frames[0])
    engine.animate(state, frames[:3])  # models loaded, caches warm
    state = engine.prepare(photo, frames[0])
    wall, cpu = time.perf_counter(), time.process_time()
    engine.animate(state, frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "fps_wall": round(len(frames) / wall, 1),
        "fps_cpu": round(len(frames) / cpu, 1),
        "cpu_ms_per_frame": round(1000 * cpu / len(frames), 1),
    }


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
    parser.add_argument("--long-seconds", type=float, default=120.0, help="0 skips the memory run")
    args = parser.parse_args()
    astronaut, other = astronaut_face(400), other_person()
    flags = sorted({f for f in Path("/proc/cpuinfo").read_text().split() if f.startswith("avx512")})
    result: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": platform.processor(),
            "avx512": flags,
            "load_before": [round(v, 2) for v in os.getloadavg()],
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
    if args.long_seconds > 0:
        result["memory 1280x720 poisson"] = memory(other, astronaut, args.long_seconds)
    result["machine"]["load_after"] = [round(v, 2) for v in os.getloadavg()]  # type: ignore[index]
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
