"""The encoder: 7 convolutions down to 4x4, then 3 linear layers to the posterior's mean and log-variance."""

from __future__ import annotations

import torch
from torch import nn

from animatica.vaegan.config import VaeganConfig, down_layers


def conv_block(cin: int, cout: int, stride: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Image in [0, 1] ``(N, 3, S, S)`` -> ``(mu, logvar)``, each ``(N, latent)``."""

    def __init__(self, cfg: VaeganConfig):
        super().__init__()
        downs = down_layers(cfg.size)
        widths = [3, *cfg.channels]
        # No batch norm on the first layer: it would normalise away the image's absolute colour,
        # which is identity (skin, hair) the decoder has to restore.
        self.convs = nn.Sequential(
            *(conv_block(widths[i], widths[i + 1], 2 if downs[i] else 1, norm=i > 0) for i in range(7))
        )
        flat = cfg.channels[-1] * 4 * 4
        h0, h1 = cfg.hidden
        self.linears = nn.Sequential(
            nn.Linear(flat, h0),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h0, h1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(h1, 2 * cfg.latent),
        )
        self.latent = cfg.latent
        if cfg.condition == "source":
            # A sum of three encodings (z_source + z_driving - z_initial) at the prior's unit noise
            # each drowns what the latent says, and the decoder learns to ignore it before the
            # encoder learns to say anything: start with a small posterior spread instead.
            with torch.no_grad():
                self.linears[-1].bias[cfg.latent :].fill_(-6.0)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.linears(self.convs(image * 2 - 1).flatten(1))
        mu, logvar = out[:, : self.latent], out[:, self.latent :]
        # Bounded log-variance: an exp() of an unbounded output overflows in bf16 early in training.
        return mu, logvar.clamp(-12.0, 8.0)
