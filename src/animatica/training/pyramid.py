"""Image pyramid for the multi-scale losses and the multi-scale discriminator.

Each level is the image blurred and sub-sampled by the fomm anti-aliasing block, keyed
``prediction_<scale>`` as ``MultiScaleDiscriminator`` expects. Module names replace the dot of a
fractional scale with a dash, because ``nn.ModuleDict`` refuses dots.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from animatica.fomm.blocks import AntiAliasInterpolation2d
from animatica.fomm.discriminator import scale_key


class ImagePyramid(nn.Module):
    def __init__(self, scales: Sequence[float], num_channels: int = 3):
        super().__init__()
        self.scales = list(scales)
        self.levels = nn.ModuleDict(
            {scale_key(s): AntiAliasInterpolation2d(num_channels, s) for s in self.scales if s != 1}
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for s in self.scales:
            out[f"prediction_{s}"] = x if s == 1 else self.levels[scale_key(s)](x)
        return out
