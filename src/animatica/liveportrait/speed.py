"""Timing LivePortrait's per-frame path on random weights: what ``animatica bench --engine
liveportrait`` and ``bench/liveportrait_speed.py`` report.

Per driving frame the path is: motion extractor M on the frame, the motion maths and the
stitching network, warping module W, SPADE decoder G. The source side (appearance volume, source
keypoints) is computed once beforehand. Speed is only meaningful as a ratio measured in one run:
every case is timed in interleaved rounds (so load from other processes hits each alike) and the
best round is kept; the float32 matrix-product rate is measured in the same run as the yardstick.
"""

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from animatica.liveportrait.checkpoint import LivePortraitNetworks, random_networks
from animatica.liveportrait.motion import keypoint_info, stitch, transform_keypoints

SOURCE_SIZE = 256
PARTS = ("motion", "warping", "decoder")


def matmul_gflops(rounds: int = 5, size: int = 2048, dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``rounds`` rate of one size x size matrix product (2 FLOP per multiply-add)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def synthetic_images(count: int, seed: int = 0) -> torch.Tensor:
    """Smooth face-sized test pictures (B, 3, 256, 256) in [0, 1]; the cost does not depend on them."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, SOURCE_SIZE), torch.linspace(0, 1, SOURCE_SIZE), indexing="ij")
    images = []
    for i in range(count):
        phase = torch.rand(3, generator=g) * 6.28
        images.append(torch.stack([torch.sin(6 * x + 4 * y + p + 0.3 * i) for p in phase]) * 0.4 + 0.5)
    return torch.stack(images)


@dataclass
class FramePath:
    """One network set's per-frame path with the source side prepared."""

    networks: LivePortraitNetworks
    feature_3d: torch.Tensor
    x_s: torch.Tensor

    @classmethod
    def prepare(cls, networks: LivePortraitNetworks, source: torch.Tensor) -> "FramePath":
        with torch.inference_mode():
            feature = networks.appearance(source)
            x_s = transform_keypoints(keypoint_info(networks.motion(source)))
        return cls(networks, feature, x_s)

    def keypoints(self, driving: torch.Tensor) -> torch.Tensor:
        x_d = transform_keypoints(keypoint_info(self.networks.motion(driving)))
        return stitch(self.networks.stitching, self.x_s.expand_as(x_d), x_d)

    def warp(self, x_d: torch.Tensor) -> torch.Tensor:
        return self.networks.warping(self.feature_3d, x_d, self.x_s.expand_as(x_d))["out"]

    def frame(self, driving: torch.Tensor) -> torch.Tensor:
        """(B, 3, 256, 256) driving frames -> (B, 3, 512, 512) in (0, 1)."""
        return self.networks.decoder(self.warp(self.keypoints(driving)))


def part_flops(path: FramePath, driving: torch.Tensor) -> dict[str, float]:
    """GFLOP per frame of each part, as ``torch.utils.flop_counter`` counts them (convolutions
    and matrix products, 2 per multiply-add; what an accelerated part runs is counted as run)."""
    from torch.utils.flop_counter import FlopCounterMode

    n = len(driving)
    with torch.inference_mode():
        x_d = path.keypoints(driving)
        warped = path.warp(x_d)
        out = {}
        for name, fn in (
            ("motion", lambda: path.keypoints(driving)),
            ("warping", lambda: path.warp(x_d)),
            ("decoder", lambda: path.networks.decoder(warped)),
        ):
            counter = FlopCounterMode(display=False)
            with counter:
                fn()
            out[name] = counter.get_total_flops() / 1e9 / n
    return out


def time_parts(
    paths: dict[str, FramePath], driving: torch.Tensor | dict[str, torch.Tensor], rounds: int
) -> dict[str, dict[str, float]]:
    """Best ms per frame of each part and of the whole path, per named path, interleaved.
    ``driving`` is one batch for all paths, or a batch per path (frames are then timed together)."""
    batches = driving if isinstance(driving, dict) else dict.fromkeys(paths, driving)
    cases: dict[tuple[str, str], tuple[Callable[[], object], int]] = {}
    with torch.inference_mode():
        for label, path in paths.items():
            drv = batches[label]
            x_d = path.keypoints(drv)
            warped = path.warp(x_d)
            n = len(drv)
            cases[(label, "motion")] = (lambda p=path, d=drv: p.keypoints(d)), n
            cases[(label, "warping")] = (lambda p=path, k=x_d: p.warp(k)), n
            cases[(label, "decoder")] = (lambda p=path, w=warped: p.networks.decoder(w)), n
            cases[(label, "frame")] = (lambda p=path, d=drv: p.frame(d)), n
        for fn, _ in cases.values():
            fn()  # warm-up: buffers, lazily made Winograd weights, oneDNN kernels
        best = {key: float("inf") for key in cases}
        for _ in range(rounds):
            for key, (fn, n) in cases.items():
                start = time.perf_counter()
                fn()
                best[key] = min(best[key], (time.perf_counter() - start) * 1e3 / n)
    return {label: {part: best[(label, part)] for part in (*PARTS, "frame")} for label in paths}


def build_paths(
    compare: bool, seed: int = 0, device: str = "cpu", frames: int = 1
) -> tuple[dict[str, FramePath], torch.Tensor]:
    """The accelerated path (and a plain float32 copy when ``compare``) on random weights, and
    ``frames`` driving frames."""
    from animatica.liveportrait.fast import accelerate

    images = synthetic_images(1 + frames, seed).to(device)
    plain = random_networks(seed, device)
    paths = {}
    if compare:
        paths["plain"] = FramePath.prepare(copy.deepcopy(plain), images[:1])
    paths["fast"] = FramePath.prepare(accelerate(plain), images[:1])
    return paths, images[1:]


def run(
    rounds: int = 3, compare: bool = False, device: str = "cpu", batch_size: int = 1
) -> dict[str, object]:
    """The figures of ``animatica bench --engine liveportrait``: ``rounds`` timed rounds of a
    batch of driving frames (best kept), per-part ms per frame, GFLOP counted on the plain maths,
    and ratios to the float32 matrix-product rate measured in the same run."""
    paths, driving = build_paths(compare, device=device, frames=batch_size)
    gflop = part_flops(paths["plain"] if compare else _plain_twin(paths["fast"]), driving[:1])
    rounds = max(1, rounds)
    times = time_parts(paths, {"plain": driving[:1], "fast": driving}, rounds)
    rate = matmul_gflops()
    fast = times["fast"]
    total = sum(gflop.values())
    result: dict[str, object] = {
        "engine": "liveportrait",
        "size": 512,
        "frames": rounds * batch_size,
        "batch_size": batch_size,
        "ms_per_frame": round(fast["frame"], 1),
        "fps": round(1000 / fast["frame"], 3),
        "part_ms": {part: round(fast[part], 1) for part in PARTS},
        "plain_gflop_per_frame": round(total, 1),
        "matmul_gflops": round(rate, 1),
        # The plain maths' FLOPs over the time taken, and that as a share of the matmul rate:
        # above 1 means fewer multiplications than the plain maths, not a faster CPU.
        "effective_gflops": round(total / fast["frame"] * 1e3, 1),
        "effective_vs_matmul": round(total / fast["frame"] * 1e3 / rate, 3),
        # What the frame costs in matrix-product time: ms_per_frame / (plain GFLOP at the matmul rate).
        "frame_vs_plain_at_matmul_rate": round(fast["frame"] / (total / rate * 1e3), 3),
        "precision": "fp32",
        "device": device,
        "threads": torch.get_num_threads(),
    }
    if compare:
        plain = times["plain"]
        result["plain_ms_per_frame"] = round(plain["frame"], 1)
        result["plain_part_ms"] = {part: round(plain[part], 1) for part in PARTS}
        result["ratio_vs_plain"] = round(fast["frame"] / plain["frame"], 3)
    return result


def _plain_twin(fast: FramePath) -> FramePath:
    """A plain (unaccelerated) network set of the same shapes, for counting the plain maths' FLOPs."""
    plain = random_networks(0, fast.feature_3d.device)
    return FramePath(plain, fast.feature_3d, fast.x_s)
