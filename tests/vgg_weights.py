"""Random-weight VGG state dicts with torchvision's key names and shapes, for tests that load VGG files.

The layouts are written out here rather than taken from ``animatica.vgg`` so that the tests check the
module's layout against torchvision's, not against itself.
"""

from __future__ import annotations

import torch

# torchvision.models.vgg cfgs "D" (VGG16) and "E" (VGG19).
TORCHVISION_CFGS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [
        *[64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"],
        *[512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
    ],
}


def torchvision_vgg_state(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """Features with He-scaled random weights (so activations neither vanish nor explode through the
    trunk) and a small stand-in classifier (the real one is huge and loaders ignore it anyway)."""
    generator = torch.Generator().manual_seed(seed)
    state, index, channels = {}, 0, 3
    for item in TORCHVISION_CFGS[arch]:
        if item == "M":
            index += 1
            continue
        assert isinstance(item, int)
        weight = torch.randn(item, channels, 3, 3, generator=generator) * (2 / (9 * channels)) ** 0.5
        state[f"features.{index}.weight"] = weight
        state[f"features.{index}.bias"] = torch.zeros(item)
        index += 2
        channels = item
    for i, (out_f, in_f) in zip((0, 3, 6), ((16, 32), (16, 16), (10, 16)), strict=True):
        state[f"classifier.{i}.weight"] = torch.zeros(out_f, in_f)
        state[f"classifier.{i}.bias"] = torch.zeros(out_f)
    return state
