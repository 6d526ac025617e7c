"""Appearance feature extractor F: the source image as a 3-D feature volume.

A 2-D encoder takes the 256x256 image down to 64x64 with 512 channels, which are read as 32
features x 16 depth slices; 3-D residual blocks then mix the slices. The warping module later
moves this volume along the keypoint motion, so it has to hold the whole appearance of the face.

Attribute names (``first``, ``down_blocks``, ``second``, ``resblocks_3d``, ``conv1`` …) are part of
the public checkpoint's state-dict keys; renaming one breaks loading it.
"""

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class SameBlock2d(nn.Module):
    """3x3 convolution, batch norm and ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """3x3 convolution, batch norm and ReLU, then 2x2 average pooling."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), 2)


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a volume: (norm, ReLU, 3x3x3 conv) twice, plus the input."""

    def __init__(self, features: int):
        super().__init__()
        # Registration order (convs before norms) is the public key order.
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(features)
        self.norm2 = nn.BatchNorm3d(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class AppearanceFeatureExtractor(nn.Module):
    """(B, 3, 256, 256) RGB in [0, 1] -> (B, 32, 16, 64, 64) appearance volume."""

    def __init__(
        self,
        image_channels: int = 3,
        block_expansion: int = 64,
        num_down_blocks: int = 2,
        max_features: int = 512,
        reshape_channel: int = 32,
        reshape_depth: int = 16,
        num_resblocks: int = 6,
    ):
        super().__init__()
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth
        self.first = SameBlock2d(image_channels, block_expansion)
        widths = [min(max_features, block_expansion * 2**i) for i in range(num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(a, b) for a, b in itertools.pairwise(widths))
        self.second = nn.Conv2d(widths[-1], max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.first(image)  # (B, 64, 256, 256)
        for block in self.down_blocks:
            x = block(x)  # (B, 128, 128, 128), then (B, 256, 64, 64)
        x = self.second(x)  # (B, 512, 64, 64)
        b, _, h, w = x.shape
        x = x.view(b, self.reshape_channel, self.reshape_depth, h, w)  # channel c*16 + d -> (c, d)
        return self.resblocks_3d(x)
