"""LivePortrait per-frame speed on this machine: plain float32 networks vs ``accelerate``.

    python bench/liveportrait_speed.py [--json] [--rounds N] [--threads T]

The reference implementation cannot run here (its weights and its code are not installed), so the
plain float32 modules stand in for it: they compute the reference's maths layer by layer (the
same convolutions, spectral-norm kernels, nearest resizes and grid sampling; the parity tests
check them against the reference's own numbers), at the same FLOP count (``torch.utils.flop_counter``
reports ~1245 GFLOP per frame for both). Both run in one process, interleaved round by round, on
random weights of the public shapes (the cost does not depend on the values); each figure is the
best round. Then the accelerated output is compared with the plain one on the same input: max
|diff| of the float frame, of the 8-bit frames (truncated, as the reference writes them) and PSNR.
With a CPU or GPU that has bf16 units, bf16 autocast on the accelerated networks (the decoder in
bf16; the accelerated warping keeps float32, which bf16 sampling grids would cost ~10 dB) is timed
and its PSNR against float32 printed (the check is skipped, with the reason, elsewhere).
"""

import argparse
import json
import os

import numpy as np
import torch

from animatica.bench import machine
from animatica.device import use_threads
from animatica.fomm.fast import bf16_is_fast
from animatica.liveportrait.speed import PARTS, build_paths, matmul_gflops, part_flops, time_parts


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a.double() - b.double()).pow(2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def to_u8(frame: torch.Tensor) -> torch.Tensor:
    return (frame.clamp(0, 1) * 255).to(torch.uint8)  # truncation, as the reference's output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the final JSON line")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice, the cores)")
    args = parser.parse_args()
    use_threads(args.threads or 0)
    say = (lambda *a: None) if args.json else print

    paths, driving = build_paths(compare=True)
    say("counting FLOPs ...")
    flops = {label: part_flops(path, driving) for label, path in paths.items()}
    with torch.inference_mode():
        plain_out = paths["plain"].frame(driving)
        fast_out = paths["fast"].frame(driving)
    load_before = os.getloadavg()[0]
    say(f"timing plain and accelerated, {args.rounds} interleaved rounds ...")
    times = time_parts(paths, driving, args.rounds)
    rate = matmul_gflops()
    load_after = os.getloadavg()[0]

    bf16: dict[str, object] = {"bf16": "skipped: no bf16 units on this CPU (bf16 would be emulated)"}
    if bf16_is_fast():
        fast = paths["fast"]
        with torch.inference_mode():
            x_d = fast.keypoints(driving)  # float32: bf16 head-pose bins move the keypoints
            with torch.autocast(driving.device.type, dtype=torch.bfloat16):
                bf16_out = fast.networks.decoder(fast.warp(x_d)).float()
        with torch.inference_mode(), torch.autocast(driving.device.type, dtype=torch.bfloat16):
            bf16_times = time_parts({"bf16": fast}, driving, args.rounds)["bf16"]
        bf16 = {
            "bf16_ms_per_frame": round(bf16_times["frame"], 1),
            "bf16_psnr_db": round(psnr(bf16_out, plain_out), 1),
        }

    plain, fast = times["plain"], times["fast"]
    u8_diff = int((to_u8(fast_out).int() - to_u8(plain_out).int()).abs().max())
    say(f"machine: {machine()}, {torch.get_num_threads()} threads")
    say(f"load average: {load_before:.1f} before, {load_after:.1f} after ({os.cpu_count()} cores)")
    say(f"matmul 2048x2048 fp32: {rate:.0f} GFLOP/s")
    say(f"{'part':<10} {'plain ms':>9} {'fast ms':>9} {'ratio':>7} {'plain GFLOP':>12} {'fast GFLOP':>11}")
    for part in (*PARTS, "frame"):
        pf = sum(flops["plain"].values()) if part == "frame" else flops["plain"][part]
        ff = sum(flops["fast"].values()) if part == "frame" else flops["fast"][part]
        ratio = fast[part] / plain[part]
        say(f"{part:<10} {plain[part]:>9.0f} {fast[part]:>9.0f} {ratio:>7.3f} {pf:>12.1f} {ff:>11.1f}")
    say(
        f"accelerated vs plain: max |diff| {float((fast_out - plain_out).abs().max()):.2e}, "
        f"8-bit max diff {u8_diff}/255, PSNR {psnr(fast_out, plain_out):.1f} dB"
    )
    say(bf16)
    result = {
        "engine": "liveportrait",
        "ms_per_frame": round(fast["frame"], 1),
        "plain_ms_per_frame": round(plain["frame"], 1),
        "ratio_vs_plain": round(fast["frame"] / plain["frame"], 3),
        "part_ms": {p: round(fast[p], 1) for p in PARTS},
        "plain_part_ms": {p: round(plain[p], 1) for p in PARTS},
        "plain_gflop_per_frame": round(sum(flops["plain"].values()), 1),
        "fast_gflop_per_frame": round(sum(flops["fast"].values()), 1),
        "matmul_gflops": round(rate, 1),
        "plain_vs_matmul": round(sum(flops["plain"].values()) / plain["frame"] * 1e3 / rate, 3),
        "max_abs_diff": float((fast_out - plain_out).abs().max()),
        "u8_max_diff": u8_diff,
        "psnr_db": round(psnr(fast_out, plain_out), 1),
        **bf16,
        "load_average": round(max(load_before, load_after), 1),
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
