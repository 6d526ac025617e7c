"""The stitching and retargeting MLPs: public key layout, and the reference's outputs on name-derived weights.

Only the stitching file's three state dicts are drawn (a few hundred thousand values), so these
tests need none of the large weight files.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.liveportrait.named_weights import STITCHING_ROLE, load_shapes, named_state_dict

from animatica.liveportrait import motion
from animatica.liveportrait.stitching import RetargetMLP, eye_mlp, lip_mlp, stitching_mlp

PARITY = Path(__file__).resolve().parent / "reference" / "parity.npz"
TOL = 1e-5
PARTS = {"retarget_shoulder": stitching_mlp, "retarget_eye": eye_mlp, "retarget_mouth": lip_mlp}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(PARITY) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def shapes() -> dict:
    return load_shapes()[STITCHING_ROLE]


@pytest.fixture(scope="module")
def networks(shapes: dict) -> dict[str, RetargetMLP]:
    """The three networks on the name-derived weights, loaded strictly after removing ``module.``."""
    nets = {}
    for part, make in PARTS.items():
        state = named_state_dict(f"{STITCHING_ROLE}.{part}", shapes[part])
        net = make()
        net.load_state_dict({key.removeprefix("module."): value for key, value in state.items()}, strict=True)
        nets[part] = net.eval()
    return nets


@pytest.mark.parametrize("part", PARTS)
def test_state_dict_keys_and_shapes_are_the_public_ones(part: str, shapes: dict) -> None:
    ours = {key: tuple(value.shape) for key, value in PARTS[part]().state_dict().items()}
    public = {key.removeprefix("module."): tuple(shape) for key, shape in shapes[part].items()}
    assert ours == public


def test_relu_between_linear_layers_only() -> None:
    net = RetargetMLP((4, 3, 2))
    kinds = [type(layer).__name__ for layer in net.mlp]
    assert kinds == ["Linear", "ReLU", "Linear"]
    with pytest.raises(ValueError):
        RetargetMLP((4,))


def test_stitching_matches_the_reference(reference: dict, networks: dict) -> None:
    """Each frame's stitching output and the keypoints after it, from the keypoints before it."""
    x_s = torch.from_numpy(reference["source/x_s"])
    with torch.no_grad():
        for frame in ("t0", "t1", "t2", "t3"):
            x_d = torch.from_numpy(reference[f"{frame}/x_d_i_new_before_stitching"])
            delta = motion.stitching_delta(networks["retarget_shoulder"], x_s, x_d)
            np.testing.assert_allclose(delta.numpy(), reference[f"{frame}/stitch_delta"], rtol=0, atol=TOL)
            stitched = motion.apply_stitching(x_d, delta)
            # the multiplier line with factor 1 leaves the keypoints as they are, up to rounding
            np.testing.assert_allclose(stitched.numpy(), reference[f"{frame}/x_d_i_new"], rtol=0, atol=TOL)
        x_abs = torch.from_numpy(reference["absolute/t2/x_d_i"])
        delta = motion.stitching_delta(networks["retarget_shoulder"], x_s, x_abs)
        np.testing.assert_allclose(delta.numpy(), reference["absolute/t2/stitch_delta"], rtol=0, atol=TOL)


def test_stitching_moves_keypoints_and_xy_translation(reference: dict, networks: dict) -> None:
    """The last two outputs shift every keypoint's x and y, not z."""
    x_d = torch.zeros(1, 21, 3)
    delta = torch.zeros(1, 65)
    delta[0, 63:] = torch.tensor([0.5, -0.25])
    out = motion.apply_stitching(x_d, delta)
    assert torch.equal(out[0, :, 0], torch.full((21,), 0.5))
    assert torch.equal(out[0, :, 1], torch.full((21,), -0.25))
    assert torch.equal(out[0, :, 2], torch.zeros(21))


def test_retargeting_matches_the_reference(reference: dict, networks: dict) -> None:
    x_s = torch.from_numpy(reference["source/x_s"])
    with torch.no_grad():
        eye = motion.eye_delta(
            networks["retarget_eye"], x_s, torch.from_numpy(reference["retarget/eye_ratio"])
        )
        lip = motion.lip_delta(
            networks["retarget_mouth"], x_s, torch.from_numpy(reference["retarget/lip_ratio"])
        )
    np.testing.assert_allclose(eye.numpy(), reference["retarget/eye_delta"], rtol=0, atol=TOL)
    np.testing.assert_allclose(lip.numpy(), reference["retarget/lip_delta"], rtol=0, atol=TOL)


def test_retargeting_ratio_inputs_are_built_like_the_reference(reference: dict, networks: dict) -> None:
    """The ratio inputs built from source ratios and a target give the reference's deltas too."""
    eye_ratios = motion.combined_eye_ratios([0.32, 0.30], [0.12])
    lip_ratios = motion.combined_lip_ratios(0.25, [0.05])
    np.testing.assert_array_equal(eye_ratios.numpy(), reference["retarget/eye_ratio"])
    np.testing.assert_array_equal(lip_ratios.numpy(), reference["retarget/lip_ratio"])
    # batched: one source, three targets
    assert motion.combined_eye_ratios([0.3, 0.3], [0.1, 0.2, 0.3]).shape == (3, 3)
    x_s = torch.from_numpy(reference["source/x_s"])
    with torch.no_grad():
        deltas = motion.lip_delta(
            networks["retarget_mouth"], x_s, motion.combined_lip_ratios(0.25, [0.05, 0.4])
        )
    np.testing.assert_allclose(deltas[:1].numpy(), reference["retarget/lip_delta"], rtol=0, atol=TOL)
    assert not torch.allclose(deltas[0], deltas[1])  # another target, another delta
