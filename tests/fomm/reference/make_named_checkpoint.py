#!/usr/bin/env python3
# A copy of make_named_checkpoint.py from the FOMM reference data (computed with the public
# first-order-model code, MIT licence), written by refresh.py beside it: the lines below this
# header are unchanged. Edit the original and run refresh.py rather than editing this copy.
# ruff: noqa
# fmt: off
"""Write a FOMM checkpoint in the public first-order-model format whose weights are derived
from the parameter names alone (no weight file needs to be shipped).

    python make_named_checkpoint.py OUT.pth.tar [--shapes vox256_state_shapes.json]

The file holds {"generator": state_dict, "kp_detector": state_dict}, exactly the keys and
shapes of the public vox-256 checkpoints (see vox256_state_shapes.json). vox256_parity.npz
holds what the reference implementation computes with these weights (see README.md).
Needs numpy and torch.
"""
import argparse
import json
import zlib
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent

# Larger gains on the output heads so that heatmaps are peaked and masks decisive.
GAIN = {
    "kp_detector.kp.weight": 30.0,
    "generator.final.weight": 10.0,
    "generator.dense_motion_network.mask.weight": 10.0,
    "generator.dense_motion_network.occlusion.weight": 10.0,
}


def gaussian_kernel(channels: int, size: int) -> np.ndarray:
    """The fixed anti-aliasing kernel of a 0.25 down-scale: sigma 1.5, 13x13, sums to 1."""
    scale = 0.25
    sigma = (1 / scale - 1) / 2
    assert size == 2 * round(sigma * 4) + 1
    x = np.arange(size, dtype=np.float64)
    g = np.exp(-((x - (size - 1) / 2) ** 2) / (2 * sigma**2))
    k = np.outer(g, g)
    k = k / k.sum()
    return np.broadcast_to(k, (channels, 1, size, size)).astype(np.float32).copy()


def draw(prefix: str, name: str, shape: tuple) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32((prefix + name).encode()))
    leaf = name.rsplit(".", 1)[-1]
    is_norm = ".norm" in name
    if is_norm and leaf == "weight":
        a = rng.uniform(0.5, 1.5, shape)
    elif is_norm and leaf == "bias":
        a = rng.uniform(-0.1, 0.1, shape)
    elif leaf == "running_mean":
        a = rng.uniform(-0.1, 0.1, shape)
    elif leaf == "running_var":
        a = rng.uniform(0.5, 1.5, shape)
    elif name == "jacobian.weight":
        b = 0.1 / np.sqrt(int(np.prod(shape[1:])))
        a = rng.uniform(-b, b, shape)
    elif name == "jacobian.bias":
        a = np.tile([1.0, 0.0, 0.0, 1.0], shape[0] // 4) + rng.uniform(-0.05, 0.05, shape)
    elif leaf == "weight" and len(shape) == 4:
        b = GAIN.get(prefix + name, 1.0) / np.sqrt(int(np.prod(shape[1:])))
        a = rng.uniform(-b, b, shape)
    elif leaf == "bias":
        a = rng.uniform(-0.1, 0.1, shape)
    else:
        raise ValueError(f"no rule for {prefix}{name}")
    return np.asarray(a, dtype=np.float32).reshape(shape)


def state_dict(prefix: str, shapes: dict) -> dict:
    sd = {}
    for name, shape in shapes.items():
        shape = tuple(shape)
        if name.endswith("down.weight"):
            sd[name] = torch.from_numpy(gaussian_kernel(shape[0], shape[-1]))
        elif name.endswith("num_batches_tracked"):
            sd[name] = torch.tensor(0, dtype=torch.long)
        else:
            sd[name] = torch.from_numpy(draw(prefix, name, shape))
    return sd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--shapes", default=str(HERE / "vox256_state_shapes.json"))
    args = p.parse_args()
    shapes = json.loads(Path(args.shapes).read_text())
    ckpt = {
        "generator": state_dict("generator.", shapes["generator"]),
        "kp_detector": state_dict("kp_detector.", shapes["kp_detector"]),
    }
    torch.save(ckpt, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
