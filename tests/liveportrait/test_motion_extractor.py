"""Motion extractor: public key layout, its normalisations, and the reference's motion on
name-derived weights for the source and the four driving frames."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.liveportrait.named_weights import load_shapes

from animatica.liveportrait.motion import keypoint_info
from animatica.liveportrait.motion_extractor import GRN, LayerNorm2d, MotionExtractor

FRAMES = ("source", "t0", "t1", "t2", "t3")


def test_state_dict_is_the_public_layout() -> None:
    public = load_shapes()["motion_extractor"]
    ours = {key: list(value.shape) for key, value in MotionExtractor().state_dict().items()}
    assert list(ours.items()) == list(public.items())  # same keys, shapes and order


def test_channel_layer_norm_and_grn_follow_their_definitions() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 5, 6, generator=gen) * 3 + 1
    norm = LayerNorm2d(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=gen)
        norm.bias.uniform_(-0.1, 0.1, generator=gen)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,), norm.weight, norm.bias, eps=1e-6).permute(0, 3, 1, 2)
    torch.testing.assert_close(norm(x), expected, rtol=0, atol=1e-5)

    grn = GRN(8)
    with torch.no_grad():
        grn.gamma.uniform_(-0.5, 0.5, generator=gen)
        grn.beta.uniform_(-0.1, 0.1, generator=gen)
    y = x.permute(0, 2, 3, 1)  # channels last
    for b in range(2):
        norms = torch.stack([y[b, :, :, c].pow(2).sum().sqrt() for c in range(8)])
        scale = norms / (norms.mean() + 1e-6)
        expected = grn.gamma[0, 0, 0] * y[b] * scale + grn.beta[0, 0, 0] + y[b]
        torch.testing.assert_close(grn(y)[b], expected, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def motion(named_lp_networks, lp_parity: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Raw head outputs for the source and the four driving frames, in one batch of five."""
    images = torch.cat(
        [torch.from_numpy(lp_parity["inputs/source"]), torch.from_numpy(lp_parity["inputs/driving"])]
    )
    with torch.no_grad():
        return named_lp_networks.motion(images)


def test_head_shapes(motion: dict[str, torch.Tensor]) -> None:
    sizes = {"kp": 63, "scale": 1, "pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63}
    assert {name: tuple(value.shape) for name, value in motion.items()} == {
        name: (5, size) for name, size in sizes.items()
    }


@pytest.mark.parametrize("index", range(len(FRAMES)), ids=FRAMES)
def test_motion_matches_reference(motion, lp_parity: dict[str, np.ndarray], index: int) -> None:
    frame = FRAMES[index]
    raw = {name: value[index : index + 1] for name, value in motion.items()}
    for angle in ("pitch", "yaw", "roll"):
        np.testing.assert_allclose(
            raw[angle].numpy(), lp_parity[f"{frame}/{angle}_logits"], rtol=0, atol=1e-4
        )
    info = keypoint_info(raw)
    for angle in ("pitch", "yaw", "roll"):  # degrees
        np.testing.assert_allclose(
            getattr(info, angle).numpy(), lp_parity[f"{frame}/{angle}"].reshape(-1), rtol=0, atol=1e-3
        )
    for name in ("kp", "exp", "t", "scale"):
        np.testing.assert_allclose(
            getattr(info, name).numpy(), lp_parity[f"{frame}/{name}"], rtol=0, atol=1e-4
        )
