"""Procedural training data: textured characters that move over varied backgrounds.

No video dataset can be downloaded here, yet the trainer must be shown to learn motion. Each clip
is a static textured background with one or two "characters": a blob-shaped textured body with
eyes, moving with a smooth affine path (translation, rotation, anisotropic scale), bending with
a soft non-rigid wobble, and carrying articulated limbs that swing about joints on the body.
That covers the motions FOMM models (local affine transforms around keypoints, occlusion where
parts pass over each other) while staying cheap to render at 64x64.

Every clip is a pure function of ``(seed, split, index)``, so the same command always writes
the same pixels, and test clips come from a separate branch of the seed: a model trained on
one seed's train split never sees its test split.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from animatica.training.errors import DatasetError

Split = str  # "train" or "test"
_SPLIT_KEYS = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Part:
    """One rigid piece of a character: a shape in local coordinates and the matrix placing it."""

    matrix: np.ndarray  # (3, 3) local -> normalised image coordinates, per frame: (F, 3, 3)
    radius: Callable[[np.ndarray], np.ndarray]  # boundary radius as a function of the local angle
    texture: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (u, v) -> (..., 3) colours in [0, 1]
    wobble: tuple[float, float, float, float]  # amplitude, spatial frequency, temporal speed, phase
    eyes: bool = False


def _affine(tx: float, ty: float, angle: float, sx: float, sy: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c * sx, -s * sy, tx], [s * sx, c * sy, ty], [0.0, 0.0, 1.0]])


def _palette(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two clearly different colours, so textures have visible structure to track."""
    first = rng.uniform(0.05, 0.95, 3)
    second = np.clip(first + rng.choice([-1, 1], 3) * rng.uniform(0.3, 0.6, 3), 0, 1)
    return first, second


def _texture(rng: np.random.Generator) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A colour pattern in local coordinates (stripes, spots or smooth waves), so it moves with the part."""
    first, second = _palette(rng)
    kind = rng.integers(3)
    if kind == 0:
        freq = rng.uniform(2, 5)
        angle = rng.uniform(0, math.pi)
        dx, dy = math.cos(angle), math.sin(angle)

        def weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return 0.5 + 0.5 * np.sin(freq * (dx * u + dy * v))

    elif kind == 1:
        centres = rng.uniform(-0.8, 0.8, (5, 2))
        radii = rng.uniform(0.12, 0.3, 5)

        def weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            d = np.min(np.hypot(u[..., None] - centres[:, 0], v[..., None] - centres[:, 1]) - radii, axis=-1)
            return np.clip(0.5 - d * 12, 0, 1)

    else:
        waves = rng.normal(0, 2.5, (3, 2))
        phases = rng.uniform(0, 2 * math.pi, 3)

        def weight(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            total = sum(np.sin(w[0] * u + w[1] * v + p) for w, p in zip(waves, phases, strict=True))
            return 0.5 + total / 6

    def paint(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        m = weight(u, v)[..., None]
        return first * (1 - m) + second * m

    return paint


def _radius(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A star-ish blob: 1 + b·cos(nφ + φ0); b = 0 gives an ellipse in local coordinates."""
    lobes = int(rng.integers(2, 6))
    bump = rng.uniform(0.0, 0.25)
    phase = rng.uniform(0, 2 * math.pi)
    return lambda phi: 1 + bump * np.cos(lobes * phi + phase)


def _ellipse(_: np.ndarray) -> np.ndarray:
    return np.ones_like(_)


def _oscillation(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth periodic path (0.5-1.5 cycles per clip) with a random phase and amplitude."""
    cycles = rng.uniform(0.5, 1.5)
    return rng.uniform(0.4, 1.0) * amplitude * np.sin(2 * math.pi * cycles * t + rng.uniform(0, 2 * math.pi))


def _character(rng: np.random.Generator, t: np.ndarray) -> list[Part]:
    """Body parts of one character, back to front, with their per-frame placement matrices."""
    size = rng.uniform(0.4, 0.6)
    aspect = rng.uniform(0.7, 1.3)
    start = rng.uniform(-0.35, 0.35, 2)
    x = start[0] + _oscillation(rng, t, 0.55)
    y = start[1] + _oscillation(rng, t, 0.55)
    angle = rng.uniform(-0.5, 0.5) + _oscillation(rng, t, 0.8)
    breathe = 1 + _oscillation(rng, t, 0.15)
    body = np.stack(
        [
            _affine(x[i], y[i], angle[i], size * aspect * breathe[i], size / aspect / breathe[i])
            for i in range(len(t))
        ]
    )
    wobble = (rng.uniform(0.0, 0.12), rng.uniform(2, 4), rng.uniform(2, 6), rng.uniform(0, 2 * math.pi))
    limbs: list[Part] = []
    for _ in range(int(rng.integers(0, 4))):
        joint_angle = rng.uniform(0, 2 * math.pi)
        joint = 0.85 * np.array([math.cos(joint_angle), math.sin(joint_angle)])
        swing = _oscillation(rng, t, 0.9)
        length, width = rng.uniform(0.5, 0.9), rng.uniform(0.15, 0.3)
        # Limb local x runs from -1 (the joint) to 1 (the tip); it rotates about the joint.
        matrices = np.stack(
            [
                body[i]
                @ _affine(joint[0], joint[1], joint_angle + swing[i], 1, 1)
                @ _affine(length, 0, 0, length, width)
                for i in range(len(t))
            ]
        )
        limbs.append(Part(matrices, _ellipse, _texture(rng), (0.0, 0.0, 0.0, 0.0)))
    front = int(rng.integers(0, len(limbs) + 1))
    body_part = Part(body, _radius(rng), _texture(rng), wobble, eyes=True)
    return [*limbs[:front], body_part, *limbs[front:]]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A static (size, size, 3) background: gradient, soft stripes/checks, or smooth coloured noise.

    Backgrounds are smooth on purpose: the no-motion baseline reproduces a static background
    exactly while a generator must redraw it, so sharp background detail would mostly measure
    the small demo model's blur rather than how well it transfers motion.
    """
    first, second = _palette(rng)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    kind = rng.integers(3)
    if kind == 0:
        angle = rng.uniform(0, 2 * math.pi)
        m = np.clip(0.5 + (math.cos(angle) * (xx - 0.5) + math.sin(angle) * (yy - 0.5)), 0, 1)
    elif kind == 1:
        freq = rng.uniform(2, 4)
        angle = rng.uniform(0, math.pi)
        a = np.sin(freq * math.pi * (math.cos(angle) * xx + math.sin(angle) * yy))
        b = (
            np.sin(freq * math.pi * (-math.sin(angle) * xx + math.cos(angle) * yy))
            if rng.random() < 0.5
            else 1
        )
        m = 0.5 + 0.35 * a * b  # soft waves or checks: a static background a model must redraw
    else:
        noise = gaussian_filter(rng.normal(0, 1, (size, size)), sigma=size / rng.uniform(4, 8), mode="wrap")
        m = np.clip(0.5 + noise / (4 * noise.std() + 1e-9), 0, 1)
    return np.clip(first * (1 - m[..., None]) + second * m[..., None], 0, 1)


def _draw_part(canvas: np.ndarray, part: Part, frame: int, grid: np.ndarray, px: float, t: float) -> None:
    """Composite one part onto ``canvas`` with a one-pixel anti-aliased edge."""
    inverse = np.linalg.inv(part.matrix[frame])
    u = inverse[0, 0] * grid[..., 0] + inverse[0, 1] * grid[..., 1] + inverse[0, 2]
    v = inverse[1, 0] * grid[..., 0] + inverse[1, 1] * grid[..., 1] + inverse[1, 2]
    amp, freq, speed, phase = part.wobble
    if amp:
        u, v = (
            u + amp * np.sin(freq * v + speed * t + phase),
            v + amp * np.sin(freq * u + speed * t + phase + 1.3),
        )
    r = np.hypot(u, v)
    # Local units to pixels: the part's smallest axis length in image pixels.
    scale = px * min(np.hypot(*part.matrix[frame][:2, 0]), np.hypot(*part.matrix[frame][:2, 1]))
    alpha = np.clip(0.5 - (r - part.radius(np.arctan2(v, u))) * scale, 0, 1)[..., None]
    colour = part.texture(u, v)
    if part.eyes:
        for ex in (-0.35, 0.35):
            d = np.hypot(u - ex, v + 0.25) - 0.16
            pupil = np.clip(0.5 - d * scale, 0, 1)[..., None]
            white = np.clip(0.5 - (d - 0.08) * scale, 0, 1)[..., None]
            colour = colour * (1 - white) + white
            colour = colour * (1 - pupil) + 0.05 * pupil
    canvas *= 1 - alpha
    canvas += alpha * colour


def render_clip(seed: int, split: Split, index: int, size: int = 64, frames: int = 32) -> np.ndarray:
    """The frames of one clip, (frames, size, size, 3) uint8; a pure function of its arguments."""
    if split not in _SPLIT_KEYS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = np.random.default_rng([seed, _SPLIT_KEYS[split], index])
    t = np.linspace(0.0, 1.0, frames)
    background = _background(rng, size)
    characters = [_character(rng, t) for _ in range(int(rng.integers(1, 3)))]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    grid = np.stack(np.meshgrid(coords, coords, indexing="xy"), axis=-1)
    px = size / 2
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        canvas = background.copy()
        for parts in characters:
            for part in parts:
                _draw_part(canvas, part, i, grid, px, float(t[i]) * 2 * math.pi)
        out[i] = np.clip(np.rint(canvas * 255), 0, 255).astype(np.uint8)
    return out


def _write_clip(job: tuple[Path, int, Split, int, int, int]) -> None:
    staging, seed, split, index, size, frames = job
    clip = staging / split / f"clip{index:05d}"
    clip.mkdir()
    for i, frame in enumerate(render_clip(seed, split, index, size, frames)):
        Image.fromarray(frame).save(clip / f"{i:05d}.png", compress_level=1)


def synthesize(
    out: Path,
    videos: int,
    seed: int,
    size: int = 64,
    frames: int = 32,
    test_videos: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> Path:
    """Write ``out/train/<clip>/00000.png…`` and ``out/test/<clip>/…``; returns ``out``.

    ``videos`` training clips and ``test_videos`` test clips (default: a tenth, at least one),
    rendered by ``workers`` processes (the files are the same whatever their number).
    Everything is written to a hidden sibling folder first and renamed into place at the end, so
    an interrupted run leaves no half-written dataset behind.
    """
    out = Path(out)
    if videos < 1:
        raise DatasetError(f"--videos must be at least 1, got {videos}.")
    if workers < 1:
        raise DatasetError(f"--workers must be at least 1, got {workers}.")
    if size < 16 or frames < 2:
        raise DatasetError(f"--size must be at least 16 and clips need 2+ frames (got {size}, {frames}).")
    n_test = max(1, videos // 10) if test_videos is None else test_videos
    if n_test < 0:
        raise DatasetError(f"the number of test clips cannot be negative, got {n_test}.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not an empty folder; choose a new --out folder.")
    counts = (("train", videos), ("test", n_test))
    with staged_folder(out) as staging:
        jobs = [(staging, seed, split, i, size, frames) for split, count in counts for i in range(count)]
        for split in ("train", "test"):
            (staging / split).mkdir(parents=True)
        # Clips are pure functions of their index, so processes can render them in any order.
        run_jobs(_write_clip, jobs, workers, 8, on_progress)
    return out


@contextmanager
def staged_folder(out: Path) -> Iterator[Path]:
    """A hidden sibling of ``out`` to write into, renamed to ``out`` when the block ends without an
    error (``out`` is absent or an empty folder), so an interrupted run leaves nothing half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        yield staging
        if out.exists():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run_jobs(
    write: Callable[[Any], None],
    jobs: list[Any],
    workers: int,
    chunksize: int,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    """``write`` each job, in ``workers`` spawned processes when more than one, reporting progress."""
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
    try:
        done_jobs = pool.map(write, jobs, chunksize=chunksize) if pool else map(write, jobs)
        for done, _ in enumerate(done_jobs, start=1):
            if on_progress is not None:
                on_progress(done, len(jobs))
    finally:  # on a failure, stop rendering what would only be deleted
        if pool is not None:
            pool.shutdown(cancel_futures=True)
