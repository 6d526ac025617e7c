"""The decoder: 3 linear layers from the latent to a 4x4 map, then 7 convolutions up to the image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animatica.vaegan.config import VaeganConfig, down_layers


class Decoder(nn.Module):
    """Latent ``(N, latent)`` -> logits ``(N, 3, S, S)`` (``torch.sigmoid`` gives the image in [0, 1]).

    Mirrors the encoder: where an encoder layer halved, the decoder doubles (nearest neighbour)
    before the convolution, which unlike a transposed convolution leaves no checkerboard pattern.
    """

    def __init__(self, cfg: VaeganConfig):
        super().__init__()
        widths = list(reversed(cfg.channels))  # 256 ... 32
        self.start = widths[0]
        h0, h1 = reversed(cfg.hidden)
        self.linears = nn.Sequential(
            nn.Linear(cfg.latent, h0),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h0, h1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h1, widths[0] * 4 * 4),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.ups = list(reversed(down_layers(cfg.size)))
        outs = [*widths[1:], 3]
        convs = []
        for i in range(7):
            last = i == 6
            layers: list[nn.Module] = [nn.Conv2d(widths[i], outs[i], 3, padding=1, bias=last)]
            if not last:
                layers += [nn.BatchNorm2d(outs[i]), nn.LeakyReLU(0.2, inplace=True)]
            convs.append(nn.Sequential(*layers))
        self.convs = nn.ModuleList(convs)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.linears(z).view(-1, self.start, 4, 4)
        for up, conv in zip(self.ups, self.convs, strict=True):
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = conv(x)
        return x
