"""Keypoint detector: K keypoints, each with a local 2x2 jacobian, found without supervision.

An hourglass turns the (down-scaled) image into K heatmaps; a keypoint is the expectation of the
coordinate grid under softmax(heatmap / temperature). The jacobian of the local affine motion
around each keypoint is a heatmap-weighted average of four predicted maps.
"""

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.blocks import AntiAliasInterpolation2d, Hourglass
from animatica.fomm.geometry import at_least_fp32, coordinate_grid

Keypoints = dict[str, torch.Tensor]  # "value": (B, K, 2) in [-1, 1]; "jacobian": (B, K, 2, 2)


class KPDetector(nn.Module):
    def __init__(
        self,
        block_expansion: int,
        num_kp: int,
        num_channels: int,
        max_features: int,
        num_blocks: int,
        temperature: float,
        estimate_jacobian: bool = False,
        scale_factor: float = 1,
        single_jacobian_map: bool = False,
        pad: int = 0,
    ):
        super().__init__()
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        # No padding: a 7x7 head over a 64x64 map gives 58x58 heatmaps, as in the public models.
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.num_kp = num_kp
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=7, padding=pad
            )
            # Start from the identity: zero weights, bias (1, 0, 0, 1) per map.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> Keypoints:
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)  # (B, K, h, w)
        b, k, h, w = logits.shape
        heatmap = F.softmax(at_least_fp32(logits.flatten(2)) / self.temperature, dim=2).view(b, k, h, w)
        grid = coordinate_grid(h, w, heatmap.dtype, heatmap.device)  # (h, w, 2)
        value = torch.einsum("bkhw,hwc->bkc", heatmap, grid)
        out = {"value": value}
        if self.jacobian is not None:
            maps = at_least_fp32(self.jacobian(features)).view(b, self.num_jacobian_maps, 4, h, w)
            jacobian = torch.einsum("bkhw,bkchw->bkc", heatmap, maps.expand(b, k, 4, h, w))
            out["jacobian"] = jacobian.view(b, k, 2, 2)
        return out
