"""Warping module W: moves the source's 3-D appearance volume to the driving keypoints.

The dense motion network turns the two keypoint sets into a sampling grid over the (32, 16, 64, 64)
volume and an occlusion map; the volume is sampled at that grid, its depth folded into the
channels (channel c·16 + d), and a 3x3 conv block and a 1x1 conv map the 512 channels to the
decoder's 256, scaled by the occlusion map where the source cannot explain the driving frame.

Attribute names (``dense_motion_network``, ``third``, ``fourth``…) are the public checkpoint's
state-dict keys; renaming one breaks loading it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from animatica.liveportrait.dense_motion import DenseMotionNetwork


class ConvNormLeakyReLU(nn.Module):
    """3x3 convolution, batch norm, LeakyReLU (slope 0.01) at the same resolution."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.norm(self.conv(x)), negative_slope=0.01)


class WarpingNetwork(nn.Module):
    def __init__(
        self,
        num_kp: int = 21,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        out_channels: int = 256,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        compress: int = 4,
    ):
        """The defaults are the public human model; smaller values make the same network in miniature."""
        super().__init__()
        self.dense_motion_network = DenseMotionNetwork(
            block_expansion=block_expansion,
            num_blocks=num_blocks,
            max_features=max_features,
            num_kp=num_kp,
            feature_channel=feature_channel,
            reshape_depth=reshape_depth,
            compress=compress,
        )
        folded = feature_channel * reshape_depth  # 512
        self.third = ConvNormLeakyReLU(folded, out_channels)
        self.fourth = nn.Conv2d(out_channels, out_channels, kernel_size=1)

    def forward(
        self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """feature_3d (B or 1, 32, 16, 64, 64), keypoints (B, 21, 3) ->
        "out" (B, 256, 64, 64), "occlusion_map" (B, 1, 64, 64), "deformation" (B, 16, 64, 64, 3)."""
        motion = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        deformation, occlusion = motion["deformation"], motion["occlusion_map"]
        b = deformation.shape[0]
        volume = feature_3d.expand(b, *feature_3d.shape[1:])
        warped = F.grid_sample(
            volume, deformation, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        c, d, h, w = warped.shape[1:]
        out = self.fourth(self.third(warped.reshape(b, c * d, h, w)))
        return {"out": out * occlusion, "occlusion_map": occlusion, "deformation": deformation}
