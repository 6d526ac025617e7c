"""The decoder: 3 linear layers from the latent to a 4x4 map, then 7 convolutions up to the image.

With ``condition: source`` the decoder also sees the source photo: a pyramid of its features
joins every convolution's input at that convolution's resolution, and the last convolution gives,
besides painted pixels, a flow that warps the photo and a mask that blends the warp with the
painted pixels. The photo's identity then comes through its pixels and features, and the latent
only has to say how the face moves (mouth, eyes, head turn). The mask starts out favouring the
warp and the flow at zero, so an untrained model already returns the photo unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animatica.vaegan.config import VaeganConfig, down_layers
from animatica.vaegan.encoder import conv_block

EPS = 1e-4  # the composed image's logits are finite: it is clamped to [EPS, 1 - EPS]


def decoder_resolutions(size: int) -> list[int]:
    """The resolution each of the 7 decoder convolutions works at (after its upsampling)."""
    res, out = 4, []
    for up in reversed(down_layers(size)):
        res = res * 2 if up else res
        out.append(res)
    return out


def moved_latent(z_source: torch.Tensor, change: torch.Tensor, transfer_dims: int = 0) -> torch.Tensor:
    """The latent an animated frame is decoded from: the photo's ``(N, latent)`` plus the driving
    clip's change, in its first ``transfer_dims`` dimensions only where that is set (0: all)."""
    if not transfer_dims:
        return z_source + change
    told = torch.arange(change.shape[-1], device=change.device) < transfer_dims  # (latent,)
    return z_source + change * told


class SourceFeatures(nn.Module):
    """Features of the source photo at every resolution the decoder works at: the encoder's
    convolution layout, plus one full-resolution layer for the last decoder convolution."""

    def __init__(self, cfg: VaeganConfig):
        super().__init__()
        downs = down_layers(cfg.size)
        widths = [cfg.channels[0], *cfg.channels]
        self.stem = conv_block(3, cfg.channels[0], 1, norm=False)
        self.convs = nn.ModuleList(
            conv_block(widths[i], widths[i + 1], 2 if downs[i] else 1, norm=i > 0) for i in range(7)
        )
        self.widths: dict[int, int] = {cfg.size: cfg.channels[0]}
        res = cfg.size
        for down, width in zip(downs, cfg.channels, strict=True):
            res = res // 2 if down else res
            self.widths[res] = width  # the last layer at a resolution is the one used

    def forward(self, source: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(source * 2 - 1)
        out = {x.shape[-1]: x}
        for conv in self.convs:
            x = conv(x)
            out[x.shape[-1]] = x
        return out


class Decoder(nn.Module):
    """Latent ``(N, latent)`` (and, conditioned, the source ``(N, 3, S, S)`` in [0, 1]) -> logits
    ``(N, 3, S, S)`` (``torch.sigmoid`` gives the image in [0, 1]).

    Mirrors the encoder: where an encoder layer halved, the decoder doubles (nearest neighbour)
    before the convolution, which unlike a transposed convolution leaves no checkerboard pattern.
    """

    def __init__(self, cfg: VaeganConfig):
        super().__init__()
        widths = list(reversed(cfg.channels))  # 256 ... 32
        self.start = widths[0]
        self.conditioned = cfg.condition == "source"
        self.flow_range = float(cfg.flow_range)
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
        self.resolutions = decoder_resolutions(cfg.size)
        skips = [0] * 7
        if self.conditioned:
            self.source_features = SourceFeatures(cfg)
            skips = [self.source_features.widths[r] for r in self.resolutions]
        # Conditioned: 3 painted channels, 2 of flow, 1 of mask.
        outs = [*widths[1:], 6 if self.conditioned else 3]
        convs = []
        for i in range(7):
            last = i == 6
            layers: list[nn.Module] = [nn.Conv2d(widths[i] + skips[i], outs[i], 3, padding=1, bias=last)]
            if not last:
                layers += [nn.BatchNorm2d(outs[i]), nn.LeakyReLU(0.2, inplace=True)]
            convs.append(nn.Sequential(*layers))
        self.convs = nn.ModuleList(convs)
        if self.conditioned:
            last_conv = self.convs[-1][0]
            with torch.no_grad():
                last_conv.weight[3:].mul_(0.1)
                last_conv.bias[3:5].zero_()
                last_conv.bias[5].fill_(4.0)  # sigmoid(4) = 0.98: start near the unchanged photo

    def forward(self, z: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(z, source)[0]

    def decode(
        self, z: torch.Tensor, source: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The logits and, conditioned, the painted pixels ``(N, 3, S, S)`` in [0, 1] on their own:
        training asks those too to match the mouth, which the warp of a closed-mouth photo cannot
        open (while the blend mask favours the warp, the painted pixels get almost no gradient
        through the blend, and a mouth they never learnt to paint never makes the mask give way)."""
        if self.conditioned and source is None:
            raise ValueError("this decoder is conditioned on the source photo: pass it")
        features = self.source_features(source) if self.conditioned else {}
        x = self.linears(z).view(-1, self.start, 4, 4)
        for up, conv, res in zip(self.ups, self.convs, self.resolutions, strict=True):
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if self.conditioned:
                x = torch.cat([x, features[res].to(x.dtype)], dim=1)
            x = conv(x)
        if not self.conditioned:
            return x, None
        return self._compose(x.float(), source.float())

    def _compose(self, out: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of ``mask * warp(source, flow) + (1 - mask) * painted``, and ``painted``."""
        n, _, h, w = out.shape
        painted = torch.sigmoid(out[:, :3])
        flow = torch.tanh(out[:, 3:5]) * self.flow_range
        mask = torch.sigmoid(out[:, 5:6])
        ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=out.device)
        xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=out.device)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).expand(n, h, w, 2)
        warped = F.grid_sample(
            source,
            grid + flow.permute(0, 2, 3, 1),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        )
        image = mask * warped + (1 - mask) * painted
        return torch.logit(image.clamp(EPS, 1 - EPS)), painted
