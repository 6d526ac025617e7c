"""How slowly Stable Diffusion draws on this machine's CPU, measured on the real model sizes.

    python bench/image_speed.py [--threads T] [--skip-real] [--json]

Random weights of the public SD 1.5 shapes cost the same as the real ones (nothing is downloaded):
 - the tiny test pipeline: seconds per picture (64 px, 3 steps), for comparison with the tests;
 - one SD 1.5 UNet step at 512x512 (64x64 latents, batch 2 for classifier-free guidance), with its
   FLOPs counted by torch's FLOP counter;
 - one SD 1.5 VAE decode of a 512x512 picture (with its FLOPs);
 - a 2048x2048 float32 matrix product, the machine's yardstick (GFLOP/s).
A 512x512 picture in N steps then costs N UNet steps + one decode; the script prints that for
30 steps, and the same from the FLOP counts at the yardstick's rate. One JSON line at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

# The UNet and VAE of stable-diffusion-v1-5 (their public config.json values).
SD15_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "sample_size": 512,
}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def simd_flags() -> list[str]:
    """The CPU's vector flags that decide the float32 and bf16 rates (AVX2, AVX-512, bf16 units, AMX)."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return sorted(f for f in flags if f.startswith(("avx2", "avx512f", "avx512_bf16", "amx")))
    return []


def timed(fn, rounds: int = 1) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def matmul_gflops() -> float:
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    a @ b
    seconds = timed(lambda: a @ b, rounds=5)
    return 2 * 2048**3 / seconds / 1e9


def tiny_picture_seconds() -> float:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.images.tiny_models import build_tiny_pipeline

    from animatica.images.models import ImageModels
    from animatica.images.request import ImageRequest
    from animatica.images.run import run_image_request

    with tempfile.TemporaryDirectory() as folder:
        model = build_tiny_pipeline(Path(folder), "text2img")
        request = ImageRequest(prompt="a lighthouse", size=(64, 64), steps=3)
        models = ImageModels(diffusion=model)
        run_image_request(request, models, precision="fp32")  # float32, as the SD 1.5 parts below
        return timed(lambda: run_image_request(request, models, precision="fp32"), rounds=3)


@torch.inference_mode()
def real_sizes() -> dict[str, float]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    unet = UNet2DConditionModel(**SD15_UNET).eval()
    latents = torch.randn(2, 4, 64, 64)
    text = torch.randn(2, 77, 768)

    def step() -> None:
        unet(latents, 500, encoder_hidden_states=text)

    unet_flops = flops(step)
    unet_seconds = timed(step)
    params = sum(p.numel() for p in unet.parameters())
    unet.to("meta")  # free its memory before the VAE is built
    vae = AutoencoderKL(**SD15_VAE).eval()
    decode = lambda: vae.decode(torch.randn(1, 4, 64, 64))  # noqa: E731
    vae_flops = flops(decode)
    vae_seconds = timed(decode)
    return {
        "unet_params_m": params / 1e6,
        "unet_step_tflop": unet_flops / 1e12,
        "unet_step_s": unet_seconds,
        "vae_decode_tflop": vae_flops / 1e12,
        "vae_decode_s": vae_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--skip-real", action="store_true", help="only the tiny pipeline and the yardstick")
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from animatica.images.pipelines import stay_offline

    stay_offline()  # no network, no loading bars
    report: dict[str, object] = {
        "cpu": cpu_model(),
        "cpu_flags": " ".join(simd_flags()),
        "threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "matmul_gflops": matmul_gflops(),
        "tiny_picture_s": tiny_picture_seconds(),
    }
    if not args.skip_real:
        real = real_sizes()
        report.update(real)
        steps = 30
        report["sd15_512px_30_steps_s"] = steps * real["unet_step_s"] + real["vae_decode_s"]
        rate = float(report["matmul_gflops"]) * 1e9
        report["sd15_512px_30_steps_from_flops_s"] = (
            steps * real["unet_step_tflop"] * 1e12 + real["vae_decode_tflop"] * 1e12
        ) / rate
    if not args.json:
        for key, value in report.items():
            print(f"{key:>34}: {value:.3f}" if isinstance(value, float) else f"{key:>34}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
