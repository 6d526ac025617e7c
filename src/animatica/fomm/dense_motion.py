"""Dense motion network: from sparse keypoint motions to one dense flow and an occlusion map.

For each keypoint k the motion near it is approximated to first order,
    T(z) ≈ p_src_k + J_k (z - p_drv_k),   J_k = J_src_k · J_drv_k⁻¹,
plus the identity for the background. The source image is warped by each of these K+1 motions;
an hourglass looks at the warped copies and at the keypoint heatmap differences and predicts
softmax masks that blend the K+1 motions into one flow, and (optionally) where the source cannot
be seen in the driving frame (occlusion).

``forward`` is written as these steps, one method each, so that the inference-only
``fast.FastDenseMotion`` changes how a step runs without a second copy of the maths.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from animatica.fomm.blocks import AntiAliasInterpolation2d, Hourglass
from animatica.fomm.geometry import at_least_fp32, coordinate_grid, keypoint_heatmaps
from animatica.fomm.keypoint_detector import Keypoints


@dataclass
class MotionSource:
    """What the dense motion network needs of the source, computed once per source image."""

    image: torch.Tensor  # (1 or B, C, h, w) the source at the network's resolution
    kp: Keypoints
    heatmaps: torch.Tensor  # (1 or B, K, h, w) Gaussians at the source keypoints


class DenseMotionNetwork(nn.Module):
    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_kp: int,
        num_channels: int,
        estimate_occlusion_map: bool = False,
        scale_factor: float = 1,
        kp_variance: float = 0.01,
    ):
        super().__init__()
        in_features = (num_kp + 1) * (num_channels + 1)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map
            else None
        )
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def prepare_source(self, source_image: torch.Tensor, kp_source: Keypoints) -> MotionSource:
        image = self.down(source_image) if self.scale_factor != 1 else source_image
        h, w = image.shape[2:]
        heatmaps = keypoint_heatmaps(kp_source["value"], h, w, self.kp_variance)
        return MotionSource(image=image, kp=kp_source, heatmaps=heatmaps)

    def sparse_motions(self, src: MotionSource, kp_driving: Keypoints, h: int, w: int) -> torch.Tensor:
        """(B, K+1, h, w, 2): for every driving pixel, where to sample the source under each motion."""
        b = kp_driving["value"].shape[0]
        identity = coordinate_grid(h, w, kp_driving["value"].dtype, kp_driving["value"].device)
        z = identity[None, None] - kp_driving["value"][:, :, None, None, :]  # (B, K, h, w, 2)
        if "jacobian" in kp_driving:
            jac = src.kp["jacobian"] @ torch.inverse(kp_driving["jacobian"])  # (B, K, 2, 2)
            z = torch.einsum("bkij,bkhwj->bkhwi", jac, z)
        to_source = z + src.kp["value"][:, :, None, None, :]
        background = identity[None, None].expand(b, 1, h, w, 2)
        return torch.cat([background, to_source], dim=1)

    def heatmap_differences(self, src: MotionSource, kp_driving: Keypoints, h: int, w: int) -> torch.Tensor:
        """(B, K+1, 1, h, w): driving minus source Gaussians, and a zero map for the background."""
        b = kp_driving["value"].shape[0]
        heat = keypoint_heatmaps(kp_driving["value"], h, w, self.kp_variance) - src.heatmaps  # (B, K, h, w)
        return torch.cat([heat.new_zeros(b, 1, h, w), heat], dim=1).unsqueeze(2)

    def deformed_source(self, src: MotionSource, motions: torch.Tensor) -> torch.Tensor:
        """(B, K+1, C, h, w): the source warped by each of the K+1 motions (B, K+1, h, w, 2)."""
        b, k1, h, w = motions.shape[:4]
        c = src.image.shape[1]
        image = src.image.expand(b, c, h, w).unsqueeze(1).expand(b, k1, c, h, w).reshape(b * k1, c, h, w)
        deformed = F.grid_sample(image, motions.reshape(b * k1, h, w, 2), align_corners=True)
        return deformed.view(b, k1, c, h, w)

    def head_logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Mask logits (B, K+1, h, w) and occlusion logits (B, 1, h, w), or None without that head."""
        mask = at_least_fp32(self.mask(features))
        occlusion = at_least_fp32(self.occlusion(features)) if self.occlusion is not None else None
        return mask, occlusion

    def forward(self, src: MotionSource, kp_driving: Keypoints) -> dict[str, torch.Tensor]:
        b = kp_driving["value"].shape[0]
        k1 = self.num_kp + 1
        c, h, w = src.image.shape[1:]
        motions = self.sparse_motions(src, kp_driving, h, w)  # (B, K+1, h, w, 2)
        heat = self.heatmap_differences(src, kp_driving, h, w)  # (B, K+1, 1, h, w)
        deformed = self.deformed_source(src, motions)  # (B, K+1, C, h, w)

        # Channels interleave per motion: [heat_0, r_0, g_0, b_0, heat_1, r_1, ...].
        features = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, k1 * (c + 1), h, w))
        mask_logits, occlusion_logits = self.head_logits(features)
        mask = F.softmax(mask_logits, dim=1)  # (B, K+1, h, w), sums to 1 over the motions
        flow = torch.einsum("bkhw,bkhwc->bhwc", mask, motions)  # (B, h, w, 2)
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": flow}
        if occlusion_logits is not None:
            out["occlusion_map"] = torch.sigmoid(occlusion_logits)  # (B, 1, h, w)
        return out
