"""3-D dense motion: from 21 keypoint displacements to one sampling grid over the feature volume.

Each keypoint k moves its neighbourhood by a pure translation, x_s[k] - x_d[k]; with the identity
for the background that gives 22 candidate motions of the (depth 16, 64 x 64) volume. A 3-D
hourglass looks at the compressed source volume warped by every candidate, and at the difference
of Gaussian heat maps around the driving and source keypoints, then predicts per-voxel softmax
weights that blend the 22 motions into one grid, and a 2-D occlusion map.

Coordinates are in [-1, 1] with the last axis (x along width, y along height, z along depth). The
identity grid puts its end points exactly at ±1 while every ``grid_sample`` uses
``align_corners=False``, as the public checkpoints were trained: the identity therefore samples
half a voxel past the border, where zero padding blends in. That mismatch is part of the function
the weights expect, so it is kept.

``forward`` is written as its steps, one method each, so that a faster variant can override a
single step without a second copy of the maths.
"""

import torch
import torch.nn.functional as F
from torch import nn


def identity_grid(depth: int, height: int, width: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """(depth, height, width, 3) grid of (x, y, z); coordinate i of an axis of length n is 2i/(n-1) - 1."""

    def axis(n: int) -> torch.Tensor:
        return 2 * (torch.arange(n, dtype=dtype, device=device) / (n - 1)) - 1

    zz, yy, xx = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([xx, yy, zz], dim=-1)


def gaussian_heatmaps(kp: torch.Tensor, grid: torch.Tensor, variance: float) -> torch.Tensor:
    """Unnormalised Gaussians exp(-|grid - kp|² / (2 variance)): (B, K, 3) -> (B, K, d, h, w)."""
    diff = grid[None, None] - kp[:, :, None, None, None, :]  # (B, K, d, h, w, 3)
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / variance)


class DownBlock3d(nn.Module):
    """3³ convolution, batch norm, ReLU, then 2x2 average pooling in height and width only."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.norm(self.conv(x))), kernel_size=(1, 2, 2))


class UpBlock3d(nn.Module):
    """Nearest x2 up-sampling in height and width, then 3³ convolution, batch norm, ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
        return F.relu(self.norm(self.conv(x)))


def _width(block_expansion: int, max_features: int, level: int) -> int:
    return min(max_features, block_expansion * 2**level)


class Encoder3d(nn.Module):
    """Returns the input and every level's output, the decoder's skip connections."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock3d(
                in_features if i == 0 else _width(block_expansion, max_features, i),
                _width(block_expansion, max_features, i + 1),
            )
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder3d(nn.Module):
    """Up-sample, then concatenate (decoder output first, skip second); a last 3³ conv block."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip = 1 if i == num_blocks - 1 else 2  # the deepest level has no skip to add yet
            blocks.append(
                UpBlock3d(
                    skip * _width(block_expansion, max_features, i + 1),
                    _width(block_expansion, max_features, i),
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class Hourglass3d(nn.Module):
    """U-Net over (d, h, w) that halves h and w per level and keeps the depth."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = Encoder3d(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder3d(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DenseMotionNetwork(nn.Module):
    def __init__(
        self,
        block_expansion: int = 32,
        num_blocks: int = 5,
        max_features: int = 1024,
        num_kp: int = 21,
        feature_channel: int = 32,
        reshape_depth: int = 16,
        compress: int = 4,
        kp_variance: float = 0.01,
    ):
        super().__init__()
        in_features = (num_kp + 1) * (compress + 1)  # 110: per motion a heat map and 4 features
        self.hourglass = Hourglass3d(block_expansion, in_features, num_blocks, max_features)
        out = self.hourglass.out_filters  # 142
        self.mask = nn.Conv3d(out, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress)
        self.occlusion = nn.Conv2d(out * reshape_depth, 1, kernel_size=7, padding=3)
        self.num_kp = num_kp
        self.kp_variance = kp_variance

    def compressed(self, feature: torch.Tensor) -> torch.Tensor:
        """(B, 32, d, h, w) -> (B, 4, d, h, w): the volume the candidate motions are judged on."""
        return F.relu(self.norm(self.compress(feature)))

    def sparse_motions(
        self, grid: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        """(B, K+1, d, h, w, 3): where each driving voxel samples the source under each motion."""
        b = kp_driving.shape[0]
        identity = grid[None, None]  # (1, 1, d, h, w, 3)
        to_source = identity - kp_driving[:, :, None, None, None, :] + kp_source[:, :, None, None, None, :]
        background = identity.expand(b, 1, *grid.shape)
        return torch.cat([background, to_source], dim=1)

    def heatmap_differences(
        self, grid: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> torch.Tensor:
        """(B, K+1, 1, d, h, w): driving minus source Gaussians, with a zero map for the background."""
        heat = gaussian_heatmaps(kp_driving, grid, self.kp_variance) - gaussian_heatmaps(
            kp_source, grid, self.kp_variance
        )
        zeros = heat.new_zeros(heat.shape[0], 1, *heat.shape[2:])
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def deformed_features(self, feature: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """(B, K+1, C, d, h, w): the compressed volume (B, C, d, h, w) sampled at every motion."""
        b, k1, d, h, w = motions.shape[:5]
        c = feature.shape[1]
        volume = feature.expand(b, c, d, h, w).unsqueeze(1).expand(b, k1, c, d, h, w)
        deformed = F.grid_sample(
            volume.reshape(b * k1, c, d, h, w),
            motions.reshape(b * k1, d, h, w, 3),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        return deformed.view(b, k1, c, d, h, w)

    def forward(
        self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """feature (B or 1, 32, d, h, w), keypoints (B, K, 3) -> deformation (B, d, h, w, 3) and
        occlusion_map (B, 1, h, w)."""
        b = kp_driving.shape[0]
        d, h, w = feature.shape[2:]
        grid = identity_grid(d, h, w, kp_driving.dtype, kp_driving.device)
        motions = self.sparse_motions(grid, kp_driving, kp_source)
        heat = self.heatmap_differences(grid, kp_driving, kp_source)
        deformed = self.deformed_features(self.compressed(feature), motions)

        # Keypoint-major channels: [heat_0, f_0 (4), heat_1, f_1 (4), ...], 110 in all.
        x = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(x)  # (B, 142, d, h, w)

        mask = F.softmax(self.mask(prediction), dim=1)  # (B, K+1, d, h, w), sums to 1 over motions
        deformation = torch.einsum("bkdhw,bkdhwc->bdhwc", mask, motions)
        # The depth folds into the channels (channel c·d_total + depth) for the 2-D occlusion head.
        occlusion_map = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return {"deformation": deformation, "occlusion_map": occlusion_map}
