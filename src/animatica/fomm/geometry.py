"""Coordinate grids, keypoint heatmaps and warping shared by the FOMM networks.

Coordinates are normalised to [-1, 1] with x first, the convention of ``grid_sample``. Every warp
uses ``align_corners=True``: the public checkpoints were trained with PyTorch 1.0, whose
``grid_sample`` behaved that way, and sampling with the later default shifts every prediction by up
to half a pixel (≈0.014 of the output range on the reference data).
"""

import torch
import torch.nn.functional as F


def coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """A (height, width, 2) grid whose last axis holds (x, y), both spanning [-1, 1] end to end."""
    x = torch.linspace(-1.0, 1.0, width, dtype=dtype, device=device) if width > 1 else torch.zeros(1)
    y = torch.linspace(-1.0, 1.0, height, dtype=dtype, device=device) if height > 1 else torch.zeros(1)
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    return torch.stack([xx, yy], dim=-1)


def keypoint_heatmaps(
    kp_value: torch.Tensor, height: int, width: int, variance: float = 0.01
) -> torch.Tensor:
    """Unnormalised Gaussians at each keypoint: (B, K, 2) -> (B, K, H, W)."""
    grid = coordinate_grid(height, width, kp_value.dtype, kp_value.device)  # (H, W, 2)
    diff = grid[None, None] - kp_value[:, :, None, None, :]  # (B, K, H, W, 2)
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / variance)


def warp(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at ``grid`` (B, h, w, 2); the grid is resized to (H, W) first.

    Resizing the flow field bilinearly uses ``align_corners=False``, the interpolation default the
    public checkpoints were trained with (PyTorch 1.0 changed only ``grid_sample`` later).
    """
    h, w = image.shape[2:]
    if grid.shape[1:3] != (h, w):
        grid = F.interpolate(grid.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        grid = grid.permute(0, 2, 3, 1)
    if image.shape[0] != grid.shape[0]:  # one source shared by a batch of driving frames
        image = image.expand(grid.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid.to(image.dtype), align_corners=True)


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """Half-precision activations are promoted for softmax and coordinate maths; float64 is kept."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
