"""Motion extractor M: canonical keypoints, head pose, expression, scale and translation of a face.

A ConvNeXt-V2 tiny backbone (depths 3-3-9-3, widths 96-192-384-768) reduces the 256x256 image to one
768-vector, and seven linear heads read the motion from it. The pose angles come out as logits over
66 bins of 3 degrees; ``motion.keypoint_info`` turns them into degrees (a softmax expectation).

Attribute names (``detector``, ``downsample_layers``, ``stages``, ``dwconv``, ``grn``, ``fc_kp`` …)
are part of the public checkpoint's state-dict keys; renaming one breaks loading it.
"""

import itertools

import torch
import torch.nn.functional as F
from torch import nn

MotionOutput = dict[str, torch.Tensor]
# The heads, in the public checkpoint's order.
HEADS = ("kp", "scale", "pitch", "yaw", "roll", "t", "exp")


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of a (B, C, H, W) map (biased variance, eps inside the root)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation of ConvNeXt-V2 on a channels-last (B, H, W, C) map: each channel
    is scaled by its spatial L2 norm relative to the mean norm of all channels, which makes the
    channels compete instead of collapsing onto the same features."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, ord=2, dim=(1, 2), keepdim=True)  # (B, 1, 1, C)
        relative = norm / (norm.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * relative) + self.beta + x


class Block(nn.Module):
    """ConvNeXt-V2 block: depthwise 7x7, layer norm, 4x MLP with GELU and GRN, residual add."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """The backbone and the seven heads; ``forward`` gives the raw head outputs."""

    def __init__(
        self,
        in_channels: int = 3,
        depths: tuple[int, ...] = (3, 3, 9, 3),
        dims: tuple[int, ...] = (96, 192, 384, 768),
        num_kp: int = 21,
        num_bins: int = 66,
    ):
        super().__init__()
        # Stem: 4x4 patches (256 -> 64), then one 2x2 stride-2 down-sampling before each later stage.
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4), LayerNorm2d(dims[0]))]
        )
        for a, b in itertools.pairwise(dims):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(a), nn.Conv2d(a, b, kernel_size=2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(dim) for _ in range(depth)))
            for depth, dim in zip(depths, dims, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        sizes = {"kp": 3 * num_kp, "scale": 1, "t": 3, "exp": 3 * num_kp}  # pose heads: num_bins
        for name in HEADS:
            self.add_module(f"fc_{name}", nn.Linear(dims[-1], sizes.get(name, num_bins)))

    def forward(self, x: torch.Tensor) -> MotionOutput:
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))  # (B, 96, 64, 64), (B, 192, 32, 32), (B, 384, 16, 16), (B, 768, 8, 8)
        x = self.norm(x.mean(dim=(-2, -1)))  # (B, 768)
        return {name: getattr(self, f"fc_{name}")(x) for name in HEADS}


class MotionExtractor(nn.Module):
    """(B, 3, 256, 256) RGB in [0, 1] -> dict of raw head outputs: "kp" (B, 63) canonical keypoints
    (keypoint-major, read as (B, 21, 3)), "scale" (B, 1), "pitch" / "yaw" / "roll" (B, 66) bin logits,
    "t" (B, 3), "exp" (B, 63) expression deltas."""

    def __init__(self, num_kp: int = 21, num_bins: int = 66):
        super().__init__()
        self.detector = ConvNeXtV2(num_kp=num_kp, num_bins=num_bins)

    def forward(self, image: torch.Tensor) -> MotionOutput:
        return self.detector(image)
