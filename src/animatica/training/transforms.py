"""Random smooth warps for the equivariance losses: an affine map plus a thin-plate spline.

Keypoints carry no labels, so FOMM makes them consistent by demanding equivariance: detect on a
frame X and on a warped copy W(X); the keypoints found on W(X), mapped back through the warp,
must land on those found on X, and the jacobians must compose the same way. The warp is

    T(z) = A z + b + Σ_k w_k · U(|z - c_k|),   U(r) = r² log r,

with A = I + N(0, σ_affine²), b ~ N(0, σ_affine²), control points c_k on a regular grid and
2-D weights w_k ~ N(0, σ_tps²). Its jacobian is analytic,

    ∂T/∂z = A + Σ_k w_k ⊗ (log r_k² + 1)(z - c_k),

which avoids the double backward pass that differentiating T with autograd would cost.
Parameters are drawn from a caller-owned ``torch.Generator`` so that training can be resumed
with the exact random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from animatica.fomm.geometry import coordinate_grid

_EPS = 1e-9


@dataclass
class RandomWarp:
    """A batch of warps; ``affine`` (B, 2, 3), ``weights`` (B, P, 2), ``controls`` (P, 2)."""

    affine: torch.Tensor
    weights: torch.Tensor | None
    controls: torch.Tensor | None

    @classmethod
    def sample(
        cls,
        batch: int,
        sigma_affine: float,
        sigma_tps: float | None = None,
        points_tps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> RandomWarp:
        noise = torch.randn(batch, 2, 3, generator=generator) * sigma_affine
        affine = noise + torch.eye(2, 3)[None]
        if sigma_tps and points_tps:
            line = torch.linspace(-1.0, 1.0, points_tps)
            yy, xx = torch.meshgrid(line, line, indexing="ij")
            controls = torch.stack([xx.flatten(), yy.flatten()], dim=-1)
            weights = torch.randn(batch, points_tps**2, 2, generator=generator) * sigma_tps
            return cls(affine, weights, controls)
        return cls(affine, None, None)

    def to(self, device: torch.device | str) -> RandomWarp:
        return RandomWarp(
            self.affine.to(device),
            None if self.weights is None else self.weights.to(device),
            None if self.controls is None else self.controls.to(device),
        )

    def _spline_terms(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z - c_k) as (B, N, P, 2) and r_k² as (B, N, P)."""
        assert self.controls is not None
        diff = points[:, :, None, :] - self.controls[None, None].to(points.dtype)
        return diff, diff.pow(2).sum(-1)

    def apply(self, points: torch.Tensor) -> torch.Tensor:
        """T(z) for points (B, N, 2) in normalised coordinates."""
        affine = self.affine.to(points.dtype)
        out = points @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]
        if self.weights is not None:
            _, r2 = self._spline_terms(points)
            basis = 0.5 * r2 * torch.log(r2 + _EPS)  # r² log r, written in r² to avoid a square root
            out = out + basis @ self.weights.to(points.dtype)
        return out

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """∂T/∂z at points (B, N, 2), as (B, N, 2, 2) with rows = output coordinates."""
        affine = self.affine.to(points.dtype)[:, None, :, :2].expand(-1, points.shape[1], -1, -1)
        if self.weights is None:
            return affine
        diff, r2 = self._spline_terms(points)
        slope = (torch.log(r2 + _EPS) + 1)[..., None] * diff  # (B, N, P, 2): dU/dz per control point
        return affine + torch.einsum("bpi,bnpj->bnij", self.weights.to(points.dtype), slope)

    def warp_images(self, images: torch.Tensor) -> torch.Tensor:
        """The images resampled so that the pixel at z shows the original at T(z)."""
        b, _, h, w = images.shape
        grid = coordinate_grid(h, w, images.dtype, images.device).view(1, h * w, 2).expand(b, -1, -1)
        sampled = self.apply(grid).view(b, h, w, 2)
        return F.grid_sample(images, sampled, padding_mode="reflection", align_corners=True)
