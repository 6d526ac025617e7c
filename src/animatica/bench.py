"""``animatica bench``: the speed of an engine's default path on synthetic frames.

Speed is measured here and in ``bench/``, never in tests. The figure is wall time per driving
frame for ``engine.animate`` (the per-frame work); ``prepare`` runs once beforehand, and the first
batch is a warm-up that is not counted.
"""

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from animatica.errors import AnimaticaError


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"


def random_checkpoint(config: str, folder: Path) -> Path:
    """A checkpoint with randomly initialised weights and its config inside: enough to time the networks."""
    from animatica.fomm.checkpoint import save_checkpoint
    from animatica.fomm.config import config_to_dict, generator_kwargs, kp_detector_kwargs, load_config
    from animatica.fomm.generator import OcclusionAwareGenerator
    from animatica.fomm.keypoint_detector import KPDetector

    cfg = load_config(config)
    torch.manual_seed(0)
    path = folder / f"random-{Path(config).stem}.pth.tar"
    save_checkpoint(
        path,
        {
            "kp_detector": KPDetector(**kp_detector_kwargs(cfg)).state_dict(),
            "generator": OcclusionAwareGenerator(**generator_kwargs(cfg)).state_dict(),
            "config": config_to_dict(cfg),
        },
    )
    return path


def _frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth synthetic frames (random images are an unrealistically hard case for nothing)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    frames = []
    for i in range(n):
        phase = rng.uniform(0, 2 * np.pi, 3)
        img = np.stack([np.sin(6 * x + 4 * y + p + 0.1 * i) for p in phase], axis=-1)
        frames.append(((img + 1) * 127.5).astype(np.uint8))
    return np.stack(frames)


def run_bench(
    engine: str,
    size: int,
    frames: int,
    batch_size: int,
    checkpoint: str | None,
    config: str,
    device: str,
    precision: str,
    checkpoints_dir: Path | None = None,
) -> dict[str, object]:
    """Time ``engine``; a bare checkpoint name is looked up among the shipped ones and in ``checkpoints_dir``.

    Torch runs on the threads its caller set for the process; the result reports how many.
    """
    if frames < 1 or batch_size < 1:
        raise AnimaticaError("--frames and --batch-size must be at least 1")
    if engine == "liveportrait":
        # Random weights of the public shapes; the figures include the matmul rate and per-part ms.
        from animatica.device import resolve_device
        from animatica.liveportrait.speed import run

        # --frames driving frames per case in all, in rounds of one batch (the best round counts).
        rounds = max(1, frames // batch_size)
        result = run(rounds, device=str(resolve_device(device)), batch_size=batch_size)
        return {**result, "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        if engine == "fomm":
            from animatica.engines.fomm import FommEngine

            ckpt = checkpoint or str(random_checkpoint(config, Path(tmp)))
            eng = FommEngine.load(
                ckpt,
                config=None if checkpoint else config,
                device=device,
                precision=precision,
                checkpoints_dir=checkpoints_dir,
            )
            if eng.frame_size != (size, size):
                raise AnimaticaError(f"this FOMM config works at {eng.frame_size}, not {size}x{size}")
            prec, dev = eng.precision, eng.device
        elif engine == "landmarks":
            from animatica.engines.landmarks import LandmarksEngine

            eng = LandmarksEngine.load()
            prec, dev = "fp32", "cpu"
        else:
            raise AnimaticaError(f"unknown engine '{engine}' for bench; use fomm, landmarks or liveportrait")
        if engine == "landmarks":
            # A real face moving: the demo clip (generated from a photo that scikit-image ships).
            from animatica.demo import demo_source, write_demo_driving
            from animatica.media.fit import fit_frame
            from animatica.media.reader import iter_frames

            fps = 25
            clip = write_demo_driving(Path(tmp) / "driving.mp4", (frames + batch_size) / fps + 0.1, fps, size)
            driving = np.stack(list(iter_frames(clip))[: frames + batch_size])
            src = fit_frame(demo_source(), (size, size))
        else:
            driving = _frames(frames + batch_size, size)
            src = driving[0]
        state = eng.prepare(src, driving[0])
        eng.animate(state, driving[:batch_size])  # warm-up
        timed = driving[batch_size:]
        start = time.perf_counter()
        for i in range(0, len(timed), batch_size):
            eng.animate(state, timed[i : i + batch_size])
        elapsed = time.perf_counter() - start
    ms = elapsed / len(timed) * 1000
    return {
        "engine": engine,
        "size": size,
        "frames": len(timed),
        "batch_size": batch_size,
        "ms_per_frame": round(ms, 2),
        "fps": round(1000 / ms, 2),
        "precision": prec,
        "device": dev,
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
