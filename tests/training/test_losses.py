"""Losses on known inputs, and VGG19 weights loaded from a torchvision-format file."""

from pathlib import Path

import pytest
import torch
from tests.vgg_weights import torchvision_vgg_state

from animatica.training import losses
from animatica.training.errors import TrainingError
from animatica.training.pyramid import ImagePyramid


def _torchvision_vgg19_state(seed: int) -> dict[str, torch.Tensor]:
    return torchvision_vgg_state("vgg19", seed)


def test_vgg19_loads_torchvision_state_and_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "vgg19-test.pth"
    state = _torchvision_vgg19_state(0)
    torch.save(state, path)
    vgg = losses.VGG19Features()
    vgg.load_torchvision(path)
    assert torch.equal(vgg.features[28].weight, state["features.28.weight"])
    feats = vgg(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[2] for f in feats] == [32, 16, 8, 4, 2]
    assert not any(p.requires_grad for p in vgg.parameters())


def test_vgg19_rejects_wrong_files(tmp_path: Path) -> None:
    vgg = losses.VGG19Features()
    with pytest.raises(TrainingError, match="do not exist"):
        vgg.load_torchvision(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot be read"):
        vgg.load_torchvision(tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(TrainingError, match="not a torchvision VGG19"):
        vgg.load_torchvision(tmp_path / "other.pth")


def test_perceptual_loss_zero_for_equal_images_positive_otherwise(tmp_path: Path) -> None:
    torch.save(_torchvision_vgg19_state(1), tmp_path / "vgg.pth")
    pyramid = ImagePyramid([1, 0.5])
    a, b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    for loss in (
        losses.PerceptualLoss([1, 1, 1, 1, 1], tmp_path / "vgg.pth"),
        losses.PerceptualLoss([1, 1, 1, 1, 1]),
    ):
        assert float(loss(pyramid(a), pyramid(a))) == 0
        assert float(loss(pyramid(a), pyramid(b))) > 0
    assert losses.PerceptualLoss([1] * 5).mode == "pixel"


def test_pixel_fallback_value() -> None:
    a = {"prediction_1": torch.zeros(1, 3, 4, 4), "prediction_0.5": torch.zeros(1, 3, 2, 2)}
    b = {"prediction_1": torch.full((1, 3, 4, 4), 0.25), "prediction_0.5": torch.full((1, 3, 2, 2), 0.5)}
    # Σ weights (= 3) per level times each level's mean |a - b|.
    assert float(losses.PerceptualLoss([1, 2])(a, b)) == pytest.approx(3 * 0.25 + 3 * 0.5)


def test_lsgan_and_feature_matching_on_known_maps() -> None:
    fake = {"prediction_map_1": torch.full((1, 1, 2, 2), 0.5), "feature_maps_1": [torch.ones(1, 2, 2, 2)]}
    real = {"prediction_map_1": torch.full((1, 1, 2, 2), 1.0), "feature_maps_1": [torch.zeros(1, 2, 2, 2)]}
    assert float(losses.generator_gan_loss(fake, [1], 2.0)) == pytest.approx(2 * 0.25)
    assert float(losses.discriminator_gan_loss(real, fake, [1], 1.0)) == pytest.approx(0 + 0.25)
    assert float(losses.feature_matching_loss(real, fake, [1], [10.0])) == pytest.approx(10.0)


def test_equivariance_losses() -> None:
    kp = torch.rand(2, 3, 2)
    assert float(losses.equivariance_value_loss(kp, kp, 10)) == 0
    assert float(losses.equivariance_value_loss(kp, kp + 0.1, 10)) == pytest.approx(1.0)
    jac = torch.eye(2).expand(2, 3, 2, 2) * 2
    assert float(losses.equivariance_jacobian_loss(jac, jac, 10)) == pytest.approx(0, abs=1e-6)
    assert float(losses.equivariance_jacobian_loss(jac, jac * 2, 1)) == pytest.approx(0.5)
