"""FOMM vox-256 inference speed on this machine: plain float32 vs the optimised default path.

    python bench/fomm_speed.py [--json] [--checkpoint K] [--rounds N] [--batches 1,2,4,8]

Measured in one run, interleaved round by round so that load from other processes hits every
variant alike (each figure is the best round; ratios are what to compare across machines):
 - plain float32, batch 1, full forward (keypoints of source and driving, then the generator):
   what the reference implementation does per frame;
 - plain float32 with the source side computed once (driving keypoints + ``decode``);
 - the optimised default path (``optimize_for_inference``) at each batch size, and the best;
 - bf16 autocast on the plain path, to show whether bf16 pays on this CPU;
 - a 2048x2048 float32 (and bf16) matrix product, the machine's yardstick.
It also prints the PSNR of the optimised and bf16 predictions against plain float32 and the
machine, then one JSON line (``ms_per_frame`` is the optimised default path at its best batch).
Random weights are fine for speed; ``--checkpoint`` loads a real one for the accuracy figures.
"""

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from animatica.device import use_threads
from animatica.fomm.config import generator_kwargs, kp_detector_kwargs, load_config
from animatica.fomm.fast import bf16_is_fast, optimize_for_inference
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector

SIZE = 256


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float:
    """1-minute load average: above the core count, other processes share the CPU (noisy figures)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def build_networks(checkpoint: str | None) -> tuple[KPDetector, OcclusionAwareGenerator]:
    """vox-256 networks; random weights get non-trivial batch-norm statistics and sharper heads
    (as trained networks have), so that folding and the outputs' range are exercised."""
    cfg = load_config("vox-256")
    torch.manual_seed(0)
    kp_detector = KPDetector(**kp_detector_kwargs(cfg)).eval()
    generator = OcclusionAwareGenerator(**generator_kwargs(cfg)).eval()
    if checkpoint:
        from animatica.fomm.checkpoint import load_state_strict, read_checkpoint

        state = read_checkpoint(Path(checkpoint))
        load_state_strict(kp_detector, state["kp_detector"], "keypoint detector", Path(checkpoint))
        load_state_strict(generator, state["generator"], "generator", Path(checkpoint))
        return kp_detector, generator
    with torch.no_grad():
        for module in [*kp_detector.modules(), *generator.modules()]:
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
        for head in (kp_detector.kp, generator.final, generator.dense_motion_network.mask):
            head.weight.mul_(10)
        kp_detector.jacobian.weight.normal_(0, 1e-3)
    return kp_detector, generator


def frames(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source: the astronaut photo scikit-image ships; driving: shifted, zoomed crops of it."""
    photo = data.astronaut()

    def crop(x: int, y: int, s: int) -> np.ndarray:
        return np.asarray(Image.fromarray(photo[y : y + s, x : x + s]).resize((SIZE, SIZE), Image.BILINEAR))

    source = crop(100, 20, 240)
    driving = [crop(100 + 3 * (i % 5), 20 + 2 * (i % 3), 240 - 4 * (i % 4)) for i in range(count)]

    def tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255).contiguous()

    return tensor([source]), tensor(driving)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.float() - b.float()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def interleaved(
    cases: dict[str, tuple[Callable[[], object], int]], rounds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU ms per frame of every case in every round; the cases take turns in a round.

    CPU time (all threads of this process) is the load-robust figure with ``--threads 1``: time
    slices lost to other processes do not count. With more threads it includes spin-waiting.
    """
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    for fn, _ in cases.values():
        fn()  # warm-up: allocations, lazily built weights, oneDNN kernels
    for _ in range(rounds):
        for name, (fn, count) in cases.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - start) * 1e3 / count)
            cpu[name].append((time.process_time() - start_cpu) * 1e3 / count)
    return wall, cpu


def matmul_gflops(dtype: torch.dtype, rounds: int = 5) -> float:
    a = torch.randn(2048, 2048).to(dtype)
    b = torch.randn(2048, 2048).to(dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(rounds))
    return 2 * 2048**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--checkpoint", help="a vox-256 checkpoint instead of random weights")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default="1,2,4,8", help="batch sizes of the optimised path")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, the cores)")
    args = parser.parse_args()
    use_threads(args.threads)
    say = (lambda *a: None) if args.json else print
    batches = [int(b) for b in args.batches.split(",")]

    kp_detector, generator = build_networks(args.checkpoint)
    fast_kp, fast_gen = optimize_for_inference(kp_detector, generator)
    source, driving = frames(max(batches))
    one = driving[:1]

    with torch.inference_mode():
        kp_source = kp_detector(source)
        encoded = generator.encode(source, kp_source)
        fast_encoded = fast_gen.encode(source, fast_kp(source))

        def plain_full() -> torch.Tensor:
            return generator(source, kp_detector(one), kp_detector(source))["prediction"]

        def plain_pre() -> torch.Tensor:
            return generator.decode(encoded, kp_detector(one), with_deformed=False)["prediction"]

        def bf16() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return generator.decode(encoded, kp_detector(one), with_deformed=False)["prediction"]

        def fast(batch: int) -> Callable[[], torch.Tensor]:
            drv = driving[:batch]
            return lambda: fast_gen.decode(fast_encoded, fast_kp(drv), with_deformed=False)["prediction"]

        reference = plain_pre()
        full_check = plain_full()
        optimised = fast(1)()
        bf16_out = bf16()
        cases: dict[str, tuple[Callable[[], object], int]] = {
            "plain fp32, full forward, batch 1": (plain_full, 1),
            "plain fp32, source precomputed": (plain_pre, 1),
            "bf16 autocast, source precomputed": (bf16, 1),
        }
        for b in batches:
            cases[f"optimised fp32, batch {b}"] = (fast(b), b)
        say(f"measuring {len(cases)} variants, {args.rounds} interleaved rounds ...")
        load_before = load_average()
        times, cpu_times = interleaved(cases, args.rounds)
        load_after = load_average()

    best = {name: min(t) for name, t in times.items()}
    best_cpu = {name: min(t) for name, t in cpu_times.items()}
    fast_names = [f"optimised fp32, batch {b}" for b in batches]
    best_fast = min(fast_names, key=best.__getitem__)
    best_batch = batches[fast_names.index(best_fast)]
    plain = best["plain fp32, full forward, batch 1"]
    fp32_gflops = matmul_gflops(torch.float32)
    bf16_gflops = matmul_gflops(torch.bfloat16)

    say(f"machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, bf16_is_fast={bf16_is_fast()}")  # fmt: skip
    say(f"load average: {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)")
    say(f"matmul 2048x2048: fp32 {fp32_gflops:.0f} GFLOP/s, bf16 {bf16_gflops:.0f} GFLOP/s")
    plain_cpu = best_cpu["plain fp32, full forward, batch 1"]
    say(f"{'variant':<40} {'best ms/frame':>14} {'median':>8} {'vs plain':>9} {'cpu ms':>8} {'vs plain':>9}")
    for name, t in times.items():
        say(
            f"{name:<40} {best[name]:>14.1f} {float(np.median(t)):>8.1f} {plain / best[name]:>8.2f}x"
            f" {best_cpu[name]:>8.1f} {plain_cpu / best_cpu[name]:>8.2f}x"
        )
    psnr_fast = psnr(optimised, reference)
    psnr_bf16 = psnr(bf16_out, reference)
    max_diff = float((optimised - reference).abs().max())
    say(f"optimised vs plain fp32: PSNR {psnr_fast:.1f} dB, max abs diff {max_diff:.2e}")
    say(f"bf16 autocast vs plain fp32: PSNR {psnr_bf16:.1f} dB")
    say(f"full forward vs source precomputed: max abs diff {float((full_check - reference).abs().max()):.1e}")
    result = {
        "engine": "fomm",
        "size": SIZE,
        "precision": "fp32",
        "device": "cpu",
        "ms_per_frame": round(best[best_fast], 1),
        "batch_size": best_batch,
        "plain_full_ms_per_frame": round(plain, 1),
        "plain_precomputed_ms_per_frame": round(best["plain fp32, source precomputed"], 1),
        "bf16_ms_per_frame": round(best["bf16 autocast, source precomputed"], 1),
        "speedup_vs_plain_full": round(plain / best[best_fast], 2),
        "cpu_ms_per_frame": round(best_cpu[best_fast], 1),
        "plain_full_cpu_ms_per_frame": round(plain_cpu, 1),
        "cpu_speedup_vs_plain_full": round(plain_cpu / best_cpu[best_fast], 2),
        "psnr_db": round(psnr_fast, 1),
        "max_abs_diff": max_diff,
        "bf16_psnr_db": round(psnr_bf16, 1),
        "matmul_fp32_gflops": round(fp32_gflops),
        "matmul_bf16_gflops": round(bf16_gflops),
        "load_average": round(max(load_before, load_after), 1),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
