"""Training losses: multi-scale perceptual (VGG19 or the pixel fallback), LSGAN, feature matching.

Perceptual loss. FOMM compares VGG19 activations (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1:
the slices end at the first ReLU of each block, whatever names like relu*_2 suggest) of
the prediction and the real frame, at every level of an image pyramid. Those features only mean
something with ImageNet weights, which cannot be downloaded here, so the user names a local
torchvision-format file (``vgg19-dcbb9e9d.pth``) with ``--vgg-weights``.

Without that file the loss falls back to an L1 distance between the pyramids themselves. A
randomly initialised VGG19 would cost as much as the real one — measured by
``bench/perceptual_cost.py`` at 2.96 CPU-seconds per demo-64 step (batch 16) against 1.05 for
the fallback (2.8x) — while its features carry no learned notion of image similarity. The pixel pyramid is
exactly the quantity the reconstruction metric measures, and its coarser, blurred levels still
pull on misplaced parts from a distance, which is what the multi-scale perceptual loss is for.
The shipped demo model was trained with the fallback (see ``bench/train_demo.py``); with real
VGG19 weights expect sharper textures at about three times the training cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from animatica.errors import CheckpointError
from animatica.training.errors import TrainingError
from animatica.vgg import VGGFeatures

# The first ReLU of each block: relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


class VGG19Features(VGGFeatures):
    """The shared VGG19 trunk at the perceptual loss's five layers, failing as a ``TrainingError``."""

    def __init__(self) -> None:
        super().__init__("vgg19", _TAPS)

    def load_torchvision(self, path: Path, state: dict | None = None) -> None:
        try:
            super().load_torchvision(path, state)
        except CheckpointError as exc:
            raise TrainingError(str(exc)) from None


class PerceptualLoss(nn.Module):
    """Σ_scales Σ_layers w_i · mean|φ_i(prediction) − φ_i(real)|, or the pixel pyramid fallback.

    The fallback weighs each pyramid level by Σ w_i, so swapping in VGG weights keeps the loss's
    share of the total roughly where the config puts it.
    """

    def __init__(self, weights: Sequence[float], vgg_weights: Path | None = None):
        super().__init__()
        self.weights = [float(w) for w in weights]
        self.vgg: VGG19Features | None = None
        if vgg_weights is not None:
            if len(self.weights) != len(_TAPS):
                raise TrainingError(
                    f"loss_weights.perceptual needs {len(_TAPS)} values for the VGG19 layers, "
                    f"got {len(self.weights)}."
                )
            self.vgg = VGG19Features()
            self.vgg.load_torchvision(Path(vgg_weights))

    @property
    def mode(self) -> str:
        return "vgg19" if self.vgg is not None else "pixel"

    def forward(self, prediction: dict[str, torch.Tensor], real: dict[str, torch.Tensor]) -> torch.Tensor:
        total = prediction[next(iter(prediction))].new_zeros(())
        for key, pred in prediction.items():
            target = real[key].detach()
            if self.vgg is None:
                total = total + sum(self.weights) * (pred - target).abs().mean()
                continue
            for w, a, b in zip(self.weights, self.vgg(pred), self.vgg(target), strict=True):
                total = total + w * (a - b.detach()).abs().mean()
        return total


def generator_gan_loss(fake_maps: dict[str, object], scales: Sequence[float], weight: float) -> torch.Tensor:
    """LSGAN generator term: Σ_scales weight · mean((1 − D(fake))²)."""
    terms = [((1 - fake_maps[f"prediction_map_{s}"]) ** 2).mean() for s in scales]  # type: ignore[operator]
    return weight * torch.stack(terms).sum()


def discriminator_gan_loss(
    real_maps: dict[str, object], fake_maps: dict[str, object], scales: Sequence[float], weight: float
) -> torch.Tensor:
    """LSGAN discriminator term: Σ_scales weight · mean((1 − D(real))² + D(fake)²)."""
    terms = [
        ((1 - real_maps[f"prediction_map_{s}"]) ** 2 + fake_maps[f"prediction_map_{s}"] ** 2).mean()  # type: ignore[operator]
        for s in scales
    ]
    return weight * torch.stack(terms).sum()


def feature_matching_loss(
    real_maps: dict[str, object],
    fake_maps: dict[str, object],
    scales: Sequence[float],
    weights: Sequence[float],
) -> torch.Tensor:
    """Σ_scales Σ_i w_i · mean|D_i(real) − D_i(fake)|, the discriminator's features as a perceptual loss."""
    total: torch.Tensor | None = None
    for s in scales:
        real = real_maps[f"feature_maps_{s}"]
        fake = fake_maps[f"feature_maps_{s}"]
        for w, a, b in zip(weights, real, fake, strict=False):  # type: ignore[call-overload]
            term = w * (a.detach() - b).abs().mean()
            total = term if total is None else total + term
    if total is None:
        raise TrainingError("feature matching needs at least one weight and one discriminator scale.")
    return total


def equivariance_value_loss(kp_driving: torch.Tensor, kp_back: torch.Tensor, weight: float) -> torch.Tensor:
    """weight · mean|kp(X) − T(kp(T⁻¹X))|: keypoints must follow a known warp."""
    return weight * (kp_driving - kp_back).abs().mean()


def equivariance_jacobian_loss(
    jac_driving: torch.Tensor, jac_back: torch.Tensor, weight: float
) -> torch.Tensor:
    """weight · mean|I − J(X)⁻¹ · (∂T · J(T⁻¹X))|: jacobians must compose with the warp's."""
    product = torch.inverse(jac_driving) @ jac_back
    eye = torch.eye(2, dtype=product.dtype, device=product.device)
    return weight * (eye - product).abs().mean()


def pixel_l1(prediction: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference on [0, 1] pixels; logged every step as the plain reconstruction error."""
    return F.l1_loss(prediction, real)
