"""Speed of the no-weights ``landmarks`` engine, end to end, on this machine.

Two cases, each printed as one JSON line:
 - ``size`` 256: a 256x256 face photo animated by a 256x256 driving clip (face tracking,
   landmarks, retargeting, warp, mouth, H.264 encoding);
 - ``size`` 1080: the same driving clip animating a 1920x1080 picture (the face region is warped
   at full resolution and pasted back).
The driving clip is the astronaut photo that scikit-image ships, cropped to the face and moved
(turns, nods, a jaw drop), so the tracker and the warp do real work on every frame.
"""

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage import data

from animatica.engines.landmarks import LandmarksEngine
from animatica.media.writer import open_writer

FRAMES = 90


def _moved(image: np.ndarray, angle: float, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape[:2]
    c = np.array([w / 2, h * 0.45])
    a = np.deg2rad(angle)
    inv = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    p = np.stack([xs - c[0] - dx, ys - c[1] - dy])
    sx, sy = np.tensordot(inv, p, axes=1) + c[:, None, None]
    return np.stack(
        [ndimage.map_coordinates(image[..., k], [sy, sx], order=1, mode="nearest") for k in range(3)], axis=-1
    )


def driving_clip(size: int = 256) -> np.ndarray:
    face = np.asarray(Image.fromarray(data.astronaut()[20:260, 100:340]).resize((size, size)))
    frames = [_moved(face, 12 * np.sin(i / 9), 6 * np.sin(i / 13), 4 * np.sin(i / 7)) for i in range(FRAMES)]
    return np.stack(frames)


def run(source: np.ndarray, driving: np.ndarray, size_label: int) -> dict[str, object]:
    engine = LandmarksEngine.load()
    state = engine.prepare(source, driving[0])
    engine.animate(state, driving[:5])  # warm-up
    state = engine.prepare(source, driving[0])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with open_writer(Path(tmp) / "out.mp4", 30) as writer:
            for i in range(0, len(driving), 8):
                for frame in engine.animate(state, driving[i : i + 8]):
                    writer.write(frame)
        elapsed = time.perf_counter() - start
    ms = 1000 * elapsed / len(driving)
    return {
        "engine": "landmarks",
        "size": size_label,
        "ms_per_frame": round(ms, 2),
        "fps": round(1000 / ms, 1),
        "precision": "fp32",
        "device": "cpu",
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch {torch.__version__}",
        "python": sys.version.split()[0],
    }


def main() -> None:
    driving = driving_clip(256)
    source = np.asarray(Image.fromarray(data.astronaut()[10:270, 90:350]).resize((256, 256)))
    print(json.dumps(run(source, driving, 256)))
    canvas = np.asarray(Image.fromarray(data.astronaut()).resize((1080, 1080)))
    big = np.zeros((1080, 1920, 3), dtype=np.uint8)
    big[:, 420:1500] = canvas
    print(json.dumps(run(big, driving, 1080)))


if __name__ == "__main__":
    main()
