"""Tiny VAE+GAN configs, a small frame-folder dataset of coloured blobs and a random-weight checkpoint."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animatica.fomm.checkpoint import save_checkpoint
from animatica.vaegan.checkpoint import inference_entries
from animatica.vaegan.config import LossWeights, TrainParams, VaeganConfig
from animatica.vaegan.decoder import Decoder
from animatica.vaegan.encoder import Encoder


def tiny_config(size: int = 64, **changes) -> VaeganConfig:
    values = {
        "size": size,
        "latent": 8,
        "channels": (4, 4, 8, 8, 8, 8, 8),
        "hidden": (16, 16),
        "disc_channels": (4, 4, 8, 8),
        "disc_hidden": (8, 8),
        "loss": LossWeights(adversarial=1.0, feature_matching=0.5),
        "train": TrainParams(batch_size=2, kl_warmup_steps=3, adversarial_after=1, num_repeats=2, steps=4),
    }
    values.update(changes)
    return VaeganConfig(**values)


def write_clips(
    root: Path, size: int = 64, people: int = 3, clips: int = 2, frames: int = 3, seed: int = 0
) -> Path:
    """``root/train/p000#c0/00000.png ...``: a disc per person (own colour) moving over the frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for p in range(people):
        colour = rng.integers(40, 255, 3)
        for c in range(clips):
            folder = root / "train" / f"p{p:03d}#c{c}"
            folder.mkdir(parents=True)
            for f in range(frames):
                cx, cy = size / 2 + 3 * f - 3 * c, size / 2 + 2 * p
                image = np.full((size, size, 3), 30, np.uint8)
                image[(xx - cx) ** 2 + (yy - cy) ** 2 < (size / 4) ** 2] = colour
                Image.fromarray(image).save(folder / f"{f:05d}.png")
    return root


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    return write_clips(tmp_path / "data")


def write_random_checkpoint(path: Path, cfg: VaeganConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    save_checkpoint(path, inference_entries(cfg, Encoder(cfg), Decoder(cfg), step=0))
    return path


@pytest.fixture
def random_checkpoint(tmp_path: Path) -> Path:
    return write_random_checkpoint(tmp_path / "tiny.pth", tiny_config())
