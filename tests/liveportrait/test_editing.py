"""Editing a still portrait: the keypoints an edit produces (head turned by exactly the requested
angle, eye and lip targets through their networks, stitching last), the refusals, and the rendered
picture (an edit of nothing is the photo's own reconstruction, a turn changes it, a cropped photo
comes back whole with only the face region changed).

Random networks of the public shapes stand in for the weights: what is checked is the wiring and the
maths, which do not depend on trained values. Full 512x512 renders cost seconds each on a CPU, so
the few tests that render are marked slow.
"""

import math

import numpy as np
import pytest
import torch

from animatica.liveportrait import motion
from animatica.liveportrait.checkpoint import LivePortraitNetworks, random_networks
from animatica.liveportrait.edit_options import InvalidEdit, PortraitEdit
from animatica.liveportrait.editing import PortraitEditor

SOURCE_EYES = (0.31, 0.27)
SOURCE_LIPS = 0.04


@pytest.fixture(scope="module")
def networks() -> LivePortraitNetworks:
    return random_networks(seed=7)


@pytest.fixture(scope="module")
def face(lp_parity: dict[str, np.ndarray]) -> np.ndarray:
    """The reference's synthetic 256x256 face picture as (H, W, 3) uint8."""
    source = lp_parity["inputs/source"][0].transpose(1, 2, 0)
    return np.rint(source * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def editor(networks: LivePortraitNetworks, face: np.ndarray) -> PortraitEditor:
    return PortraitEditor(networks, face, crop=False, source_eyes=SOURCE_EYES, source_lips=SOURCE_LIPS)


def _canonical_rotated(editor: PortraitEditor, x: torch.Tensor) -> np.ndarray:
    """kp · R recovered from keypoints x = s · (kp · R + δ) + (tx, ty, 0), as float64 (N, 3)."""
    info = editor.info
    t = info.t.clone()
    t[..., 2] = 0
    return ((x - t[:, None, :]) / info.scale[:, :, None] - info.exp)[0].double().numpy()


def test_an_edit_of_nothing_gives_the_photos_own_keypoints(editor: PortraitEditor) -> None:
    x_d = editor.keypoints(PortraitEdit())
    assert torch.equal(x_d, editor.x_s)
    assert torch.equal(x_d, motion.transform_keypoints(editor.info))


@pytest.mark.parametrize(
    ("edit", "angle"),
    [(PortraitEdit(yaw=12.0), 12.0), (PortraitEdit(pitch=-8.0), 8.0), (PortraitEdit(roll=15.5), 15.5)],
)
def test_a_head_turn_rotates_the_keypoints_by_exactly_that_angle(
    editor: PortraitEditor, edit: PortraitEdit, angle: float
) -> None:
    x_d = editor.keypoints(edit, stitching=False)
    before = _canonical_rotated(editor, editor.x_s)  # kp · R_s
    after = _canonical_rotated(editor, x_d)  # kp · R_d
    # One rigid rotation maps the first onto the second: R_sᵀ · R_d, whose angle is the one changed
    # (any single one of pitch, yaw and roll: the others conjugate it).
    # Recovered with the photo's own scale, expression and translation: were any of them changed, no
    # orthonormal map would fit.
    relative, *_ = np.linalg.lstsq(before, after, rcond=None)
    np.testing.assert_allclose(before @ relative, after, atol=1e-5)
    np.testing.assert_allclose(relative.T @ relative, np.eye(3), atol=1e-5)
    assert np.linalg.det(relative) == pytest.approx(1.0, abs=1e-5)
    turned = math.degrees(math.acos((np.trace(relative) - 1) / 2))
    assert turned == pytest.approx(angle, abs=1e-2)


def test_stitching_comes_last_and_is_the_stitching_networks(editor: PortraitEditor) -> None:
    edit = PortraitEdit(yaw=-10.0, eyes=0.1)
    plain = editor.keypoints(edit, stitching=False)
    stitched = editor.keypoints(edit)
    assert torch.equal(stitched, motion.stitch(editor.networks.stitching, editor.x_s, plain))
    assert not torch.equal(stitched, plain)


def test_eye_and_lip_targets_add_exactly_their_networks_deltas(editor: PortraitEditor) -> None:
    nets = editor.networks
    x_s = editor.x_s
    eye_input = torch.tensor([[SOURCE_EYES[0], SOURCE_EYES[1], 0.05]])
    lip_input = torch.tensor([[SOURCE_LIPS, 0.45]])
    with torch.inference_mode():
        eye = motion.eye_delta(nets.eye, x_s, eye_input)
        lip = motion.lip_delta(nets.lip, x_s, lip_input)
        wider = motion.eye_delta(nets.eye, x_s, torch.tensor([[SOURCE_EYES[0], SOURCE_EYES[1], 0.4]]))

    eyes_only = editor.keypoints(PortraitEdit(eyes=0.05), stitching=False) - x_s
    torch.testing.assert_close(eyes_only, eye, rtol=0, atol=1e-7)
    lips_only = editor.keypoints(PortraitEdit(lips=0.45), stitching=False) - x_s
    torch.testing.assert_close(lips_only, lip, rtol=0, atol=1e-7)
    both = editor.keypoints(PortraitEdit(eyes=0.05, lips=0.45), stitching=False) - x_s
    torch.testing.assert_close(both, eye + lip, rtol=0, atol=1e-6)
    # The target is what moves the eyes: another target, another delta, the pose untouched.
    assert (eye - wider).abs().max() > 1e-4
    turned = editor.keypoints(PortraitEdit(yaw=5.0, eyes=0.05), stitching=False)
    torch.testing.assert_close(
        turned - editor.keypoints(PortraitEdit(yaw=5.0), stitching=False), eye, rtol=0, atol=1e-6
    )


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"yaw": 45}, "yaw must be between -30 and 30"),
        ({"pitch": float("nan")}, "pitch must be a finite number"),
        ({"roll": "left"}, "roll must be a number"),
        ({"eyes": 1.5}, "eyes must be an opening ratio between 0 and 0.8"),
        ({"lips": -0.1}, "lips must be an opening ratio"),
    ],
)
def test_out_of_range_edits_name_the_field_and_its_range(values: dict[str, object], words: str) -> None:
    with pytest.raises(InvalidEdit, match=words):
        PortraitEdit.from_row(values)


def test_edit_options_travel_as_plain_data() -> None:
    edit = PortraitEdit(pitch=3, yaw="-4.5", eyes=0.2)  # type: ignore[arg-type]
    row = edit.to_row()
    assert row == {"pitch": 3.0, "yaw": -4.5, "roll": 0.0, "eyes": 0.2, "lips": None}
    assert PortraitEdit.from_row({**row, "crop": True, "planted": "x"}) == edit
    assert PortraitEdit.from_row({"eyes": ""}).is_identity  # an untouched form field


@pytest.mark.slow
def test_rendered_edits(networks: LivePortraitNetworks, editor: PortraitEditor) -> None:
    """An edit of nothing is G(W(f_s; x_s, x_s)), computed here straight from the networks (that a
    turn changes the picture, the command-line and service tests show on a real photo)."""
    unedited = editor.edit(PortraitEdit())
    assert unedited.shape == (512, 512, 3) and unedited.dtype == np.uint8
    with torch.inference_mode():
        warped = networks.warping(editor.feature_3d, editor.x_s, editor.x_s)["out"]
        decoded = networks.decoder(warped)[0].permute(1, 2, 0).clamp(0, 1).mul(255).numpy()
    np.testing.assert_array_equal(unedited, decoded.astype(np.uint8))


def test_a_photo_is_prepared_with_its_face_found_and_measured(networks: LivePortraitNetworks) -> None:
    """Cropping finds the face of a real photo and measures its openness (rendering the whole photo
    back is the command-line test's)."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut())  # 512x512, one face
    editor = PortraitEditor(networks, photo, crop=True)
    assert 0.15 < (editor.eye_ratio or 0) < 0.5, "her eyes are open"
    assert editor.lip_ratio is not None and editor.lip_ratio < 0.2, "her lips are nearly closed"
