"""Occlusion-aware generator: encode the source, warp its features by the dense motion, decode.

Split into ``encode`` (the source alone) and ``decode`` (per driving frame) so that animation
computes the source side once per job instead of once per frame — about a fifth of the work.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, _width
from animatica.fomm.dense_motion import DenseMotionNetwork, MotionSource
from animatica.fomm.geometry import warp
from animatica.fomm.keypoint_detector import Keypoints


@dataclass
class EncodedSource:
    """Everything the generator needs of one source image, reusable for every driving frame."""

    image: torch.Tensor  # (1, C, H, W)
    features: torch.Tensor  # (1, F, H / 2**num_down_blocks, W / 2**num_down_blocks)
    motion: MotionSource | None


class OcclusionAwareGenerator(nn.Module):
    def __init__(
        self,
        num_channels: int,
        num_kp: int,
        block_expansion: int,
        max_features: int,
        num_down_blocks: int,
        num_bottleneck_blocks: int,
        estimate_occlusion_map: bool = False,
        dense_motion_params: dict | None = None,
        estimate_jacobian: bool = False,
    ):
        super().__init__()
        self.dense_motion_network = (
            DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                **dense_motion_params,
            )
            if dense_motion_params is not None
            else None
        )
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                _width(block_expansion, max_features, i), _width(block_expansion, max_features, i + 1)
            )
            for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(
                _width(block_expansion, max_features, num_down_blocks - i),
                _width(block_expansion, max_features, num_down_blocks - i - 1),
            )
            for i in range(num_down_blocks)
        )
        bottleneck_features = _width(block_expansion, max_features, num_down_blocks)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(bottleneck_features, kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels

    def encode(self, source: torch.Tensor, kp_source: Keypoints) -> EncodedSource:
        features = self.first(source)
        for block in self.down_blocks:
            features = block(features)
        motion = None
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network.prepare_source(source, kp_source)
        return EncodedSource(image=source, features=features, motion=motion)

    def decode(
        self, src: EncodedSource, kp_driving: Keypoints, with_deformed: bool = True
    ) -> dict[str, torch.Tensor]:
        """Generate one frame per driving keypoint set; ``with_deformed`` adds the warped source image."""
        out: dict[str, torch.Tensor] = {}
        features = src.features
        if self.dense_motion_network is not None and src.motion is not None:
            motion = self.dense_motion_network(src.motion, kp_driving)
            out["mask"] = motion["mask"]
            out["sparse_deformed"] = motion["sparse_deformed"]
            flow = motion["deformation"]
            features = warp(features, flow)
            occlusion = motion.get("occlusion_map")
            if occlusion is not None:
                out["occlusion_map"] = occlusion
                if occlusion.shape[2:] != features.shape[2:]:
                    occlusion = F.interpolate(
                        occlusion, size=features.shape[2:], mode="bilinear", align_corners=False
                    )
                features = features * occlusion.to(features.dtype)
            if with_deformed:
                out["deformed"] = warp(src.image, flow)
        elif features.shape[0] != kp_driving["value"].shape[0]:
            features = features.expand(kp_driving["value"].shape[0], -1, -1, -1)

        x = self.bottleneck(features)
        for block in self.up_blocks:
            x = block(x)
        out["prediction"] = torch.sigmoid(self.final(x))
        return out

    def forward(
        self, source: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints
    ) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(source, kp_source), kp_driving)
