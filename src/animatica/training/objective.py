"""The two training objectives: what the generator side and the discriminator minimise.

Each is an ``nn.Module`` whose forward takes only batch tensors (frames and the random warp's
parameters) and returns scalar losses, so ``nn.DataParallel`` can split a batch across GPUs
without knowing anything about FOMM. The warp parameters are drawn by the trainer from its own
generator and passed in, which keeps the random stream in one place for exact resumption.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from animatica.fomm.discriminator import MultiScaleDiscriminator
from animatica.fomm.generator import OcclusionAwareGenerator
from animatica.fomm.keypoint_detector import KPDetector
from animatica.training import losses
from animatica.training.pyramid import ImagePyramid
from animatica.training.transforms import RandomWarp

Losses = dict[str, torch.Tensor]


def control_points(points_tps: int | None, device: torch.device) -> torch.Tensor | None:
    if not points_tps:
        return None
    line = torch.linspace(-1.0, 1.0, points_tps, device=device)
    yy, xx = torch.meshgrid(line, line, indexing="ij")
    return torch.stack([xx.flatten(), yy.flatten()], dim=-1)


class GeneratorObjective(nn.Module):
    """Keypoint detector + generator losses: perceptual, GAN, feature matching, equivariance."""

    def __init__(
        self,
        kp_detector: KPDetector,
        generator: OcclusionAwareGenerator,
        discriminator: MultiScaleDiscriminator | None,
        train_params: dict,
        vgg_weights: Path | None = None,
    ):
        super().__init__()
        self.kp_detector = kp_detector
        self.generator = generator
        self.discriminator = discriminator
        weights = train_params["loss_weights"]
        self.weights = weights
        self.scales = list(train_params["scales"])
        self.pyramid = ImagePyramid(self.scales, generator.num_channels)
        perceptual = weights.get("perceptual") or []
        self.perceptual = losses.PerceptualLoss(perceptual, vgg_weights) if sum(perceptual) > 0 else None
        self.disc_scales = list(discriminator.scales) if discriminator is not None else []
        self.points_tps = train_params["transform_params"].get("points_tps")
        self.use_gan = discriminator is not None and weights.get("generator_gan", 0) > 0
        self.use_fm = discriminator is not None and sum(weights.get("feature_matching") or []) > 0
        self.use_equivariance = weights.get("equivariance_value", 0) > 0 or (
            weights.get("equivariance_jacobian", 0) > 0
        )

    def forward(
        self,
        source: torch.Tensor,
        driving: torch.Tensor,
        warp_affine: torch.Tensor,
        warp_weights: torch.Tensor,
    ) -> tuple[Losses, dict[str, torch.Tensor]]:
        kp_source = self.kp_detector(source)
        kp_driving = self.kp_detector(driving)
        generated = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)
        prediction = generated["prediction"]
        out: Losses = {
            "l1": losses.pixel_l1(prediction.detach(), driving),
            "baseline_l1": losses.pixel_l1(source, driving),
        }
        pyramid_fake = self.pyramid(prediction)
        pyramid_real = self.pyramid(driving)
        if self.perceptual is not None:
            out["perceptual"] = self.perceptual(pyramid_fake, pyramid_real)
        if self.use_gan or self.use_fm:
            assert self.discriminator is not None
            kp_detached = {"value": kp_driving["value"].detach()}
            fake_maps = self.discriminator({k: pyramid_fake[k] for k in self._disc_keys()}, kp=kp_detached)
            real_maps = self.discriminator({k: pyramid_real[k] for k in self._disc_keys()}, kp=kp_detached)
            if self.use_gan:
                out["generator_gan"] = losses.generator_gan_loss(
                    fake_maps, self.disc_scales, self.weights["generator_gan"]
                )
            if self.use_fm:
                out["feature_matching"] = losses.feature_matching_loss(
                    real_maps, fake_maps, self.disc_scales, self.weights["feature_matching"]
                )
        if self.use_equivariance:
            out.update(self._equivariance(driving, kp_driving, warp_affine, warp_weights))
        generated["kp_source"] = kp_source["value"]
        generated["kp_driving"] = kp_driving["value"]
        return out, generated

    def _disc_keys(self) -> list[str]:
        return [f"prediction_{s}" for s in self.disc_scales]

    def _equivariance(
        self, driving: torch.Tensor, kp_driving: dict, warp_affine: torch.Tensor, warp_weights: torch.Tensor
    ) -> Losses:
        controls = control_points(self.points_tps, driving.device)
        warp = RandomWarp(warp_affine, warp_weights if controls is not None else None, controls)
        warped = warp.warp_images(driving)
        kp_warped = self.kp_detector(warped)
        out: Losses = {}
        value_weight = self.weights.get("equivariance_value", 0)
        if value_weight > 0:
            back = warp.apply(kp_warped["value"])
            out["equivariance_value"] = losses.equivariance_value_loss(
                kp_driving["value"], back, value_weight
            )
        jac_weight = self.weights.get("equivariance_jacobian", 0)
        if jac_weight > 0 and "jacobian" in kp_driving:
            back_jac = warp.jacobian(kp_warped["value"]) @ kp_warped["jacobian"]
            out["equivariance_jacobian"] = losses.equivariance_jacobian_loss(
                kp_driving["jacobian"], back_jac, jac_weight
            )
        return out


class DiscriminatorObjective(nn.Module):
    """LSGAN loss of the discriminator on real frames and (detached) predictions."""

    def __init__(self, discriminator: MultiScaleDiscriminator, train_params: dict):
        super().__init__()
        self.discriminator = discriminator
        self.scales = list(discriminator.scales)
        self.pyramid = ImagePyramid(self.scales)
        self.weight = train_params["loss_weights"].get("discriminator_gan", 0)

    def forward(self, driving: torch.Tensor, prediction: torch.Tensor, kp_driving: torch.Tensor) -> Losses:
        kp = {"value": kp_driving.detach()}
        real = self.discriminator(self.pyramid(driving), kp=kp)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp=kp)
        return {"discriminator_gan": losses.discriminator_gan_loss(real, fake, self.scales, self.weight)}
