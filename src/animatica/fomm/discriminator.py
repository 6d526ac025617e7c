"""Multi-scale patch discriminator (pix2pix style) used for adversarial training.

Each scale gets its own discriminator over the image pyramid level of that scale; optionally the
driving keypoints' heatmaps are appended as extra input channels.
"""

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.geometry import keypoint_heatmaps
from animatica.fomm.keypoint_detector import Keypoints
from animatica.fomm.spectral_norm import SNConv2d


class DiscriminatorBlock(nn.Module):
    """4x4 convolution (optionally spectrally normalised), instance norm, LeakyReLU 0.2, pooling."""

    def __init__(
        self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool, kernel_size: int = 4
    ):
        super().__init__()
        self.conv = (
            SNConv2d(in_features, out_features, kernel_size)
            if sn
            else nn.Conv2d(in_features, out_features, kernel_size)
        )
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, 2) if self.pool else out


class Discriminator(nn.Module):
    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 64,
        num_blocks: int = 4,
        max_features: int = 512,
        sn: bool = False,
        use_kp: bool = False,
        num_kp: int = 10,
        kp_variance: float = 0.01,
        **_: object,  # the config's common params (e.g. estimate_jacobian) do not concern it
    ):
        super().__init__()
        widths = [min(max_features, block_expansion * 2 ** (i + 1)) for i in range(num_blocks)]
        in_first = num_channels + (num_kp if use_kp else 0)
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(
                in_first if i == 0 else widths[i - 1],
                widths[i],
                norm=i != 0,
                pool=i != num_blocks - 1,
                sn=sn,
            )
            for i in range(num_blocks)
        )
        self.conv = SNConv2d(widths[-1], 1, 1) if sn else nn.Conv2d(widths[-1], 1, 1)
        self.use_kp = use_kp
        self.kp_variance = kp_variance

    def forward(
        self, x: torch.Tensor, kp: Keypoints | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = x
        if self.use_kp:
            if kp is None:
                raise ValueError("this discriminator was configured with use_kp and needs keypoints")
            out = torch.cat([out, keypoint_heatmaps(kp["value"], *x.shape[2:], self.kp_variance)], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


def scale_key(scale: float) -> str:
    """Module key of a scale: '1', '0-5', … (a dot is not allowed in module names)."""
    return str(scale).replace(".", "-")


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, scales: list[float] | tuple[float, ...] = (1,), **kwargs: object):
        super().__init__()
        self.scales = list(scales)
        self.discs = nn.ModuleDict({scale_key(s): Discriminator(**kwargs) for s in self.scales})

    def forward(self, pyramid: dict[str, torch.Tensor], kp: Keypoints | None = None) -> dict[str, object]:
        """``pyramid`` maps 'prediction_<scale>' to the image at that scale, as the image pyramid gives it."""
        out: dict[str, object] = {}
        for scale in self.scales:
            feature_maps, prediction = self.discs[scale_key(scale)](pyramid[f"prediction_{scale}"], kp)
            out[f"feature_maps_{scale}"] = feature_maps
            out[f"prediction_map_{scale}"] = prediction
        return out
