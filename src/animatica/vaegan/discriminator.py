"""The discriminator: 4 strided convolutions and 3 linear layers to one real/fake logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animatica.vaegan.config import VaeganConfig


class Discriminator(nn.Module):
    """Image in [0, 1] -> ``(logit (N,), features (N, C, h, w))``.

    The features (the last convolution's output) are what the optional feature-matching loss
    compares between a real image and its reconstruction. Larger inputs are average-pooled to
    4x4 before the linear layers, so the widths do not grow with the image size.
    """

    def __init__(self, cfg: VaeganConfig):
        super().__init__()
        widths = [3, *cfg.disc_channels]
        self.convs = nn.Sequential(
            *(
                nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1), nn.LeakyReLU(0.2))
                for i in range(4)
            )
        )
        h0, h1 = cfg.disc_hidden
        self.linears = nn.Sequential(
            nn.Linear(cfg.disc_channels[-1] * 16, h0),
            nn.LeakyReLU(0.2),
            nn.Linear(h0, h1),
            nn.LeakyReLU(0.2),
            nn.Linear(h1, 1),
        )

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.convs(image * 2 - 1)
        pooled = features if features.shape[-1] == 4 else F.adaptive_avg_pool2d(features, 4)
        return self.linears(pooled.flatten(1)).squeeze(1), features
