"""The motion maths against the reference's intermediate values (``reference/parity.npz``).

The motion extractor's raw outputs stored for the source and the four driving frames go in; every
intermediate the reference kept comes out: angles, rotations, transformed keypoints, the default
relative motion with the expression-friendly step and stitching for t0..t3 (t0 is the initial
frame), and absolute motion for t2. The regions, retargeting and multiplier paths the reference
data does not cover are checked by their defining properties.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.liveportrait.named_weights import STITCHING_ROLE, load_shapes, named_state_dict

from animatica.errors import AnimaticaError
from animatica.liveportrait import motion
from animatica.liveportrait.stitching import eye_mlp, lip_mlp, stitching_mlp

PARITY = Path(__file__).resolve().parent / "reference" / "parity.npz"
TOL = 1e-5
FRAMES = ("t0", "t1", "t2", "t3")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(PARITY) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def networks() -> motion.Networks:
    shapes = load_shapes()[STITCHING_ROLE]
    nets = {}
    for part, make in (
        ("retarget_shoulder", stitching_mlp),
        ("retarget_eye", eye_mlp),
        ("retarget_mouth", lip_mlp),
    ):
        net = make()
        state = named_state_dict(f"{STITCHING_ROLE}.{part}", shapes[part])
        net.load_state_dict({key.removeprefix("module."): value for key, value in state.items()})
        nets[part] = net.eval()
    return motion.Networks(nets["retarget_shoulder"], nets["retarget_eye"], nets["retarget_mouth"])


def raw(reference: dict, prefix: str) -> dict[str, torch.Tensor]:
    """The motion extractor's output as it leaves the network: (1, 63) kp and exp, (1, 66) logits."""
    r = {key: torch.from_numpy(reference[f"{prefix}/{key}"]) for key in ("t", "scale")}
    r["kp"] = torch.from_numpy(reference[f"{prefix}/kp"]).reshape(1, 63)
    r["exp"] = torch.from_numpy(reference[f"{prefix}/exp"]).reshape(1, 63)
    for angle in ("pitch", "yaw", "roll"):
        r[angle] = torch.from_numpy(reference[f"{prefix}/{angle}_logits"])
    return r


def info(reference: dict, prefix: str) -> motion.KeypointInfo:
    return motion.keypoint_info(raw(reference, prefix))


def batch(reference: dict, frames: tuple[str, ...]) -> motion.KeypointInfo:
    infos = [info(reference, f) for f in frames]
    return motion.KeypointInfo(
        **{
            name: torch.cat([getattr(i, name) for i in infos])
            for name in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")
        }
    )


def close(actual: torch.Tensor, reference: np.ndarray, tol: float = TOL) -> None:
    np.testing.assert_allclose(actual.detach().numpy().reshape(reference.shape), reference, rtol=0, atol=tol)


@pytest.mark.parametrize("prefix", ["source", *FRAMES])
def test_keypoint_info_and_transformed_keypoints(reference: dict, prefix: str) -> None:
    got = info(reference, prefix)
    for angle in ("pitch", "yaw", "roll"):
        close(getattr(got, angle), reference[f"{prefix}/{angle}"], 1e-4)  # degrees
    close(got.kp, reference[f"{prefix}/kp"])
    close(got.exp, reference[f"{prefix}/exp"])
    rot = "source/R_s" if prefix == "source" else f"{prefix}/R_d"
    close(got.rotation(), reference[rot])
    x = "source/x_s" if prefix == "source" else f"{prefix}/x_d"
    close(motion.transform_keypoints(got), reference[x])


def test_rotation_is_the_transposed_zyx_product() -> None:
    """Pure rotations about each axis, and the transpose of Rz·Ry·Rx for a combination."""
    ninety = torch.tensor([90.0])
    zero = torch.tensor([0.0])
    rz = motion.rotation(zero, zero, ninety)[0]
    # keypoints are rows multiplied on the right: (1, 0, 0) @ R = the first row of R
    np.testing.assert_allclose(rz.numpy(), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-6)
    rx = motion.rotation(ninety, zero, zero)[0]
    np.testing.assert_allclose(rx.numpy(), [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-6)
    r = motion.rotation(torch.tensor([10.0]), torch.tensor([-20.0]), torch.tensor([30.0]))[0].double()
    np.testing.assert_allclose((r @ r.T).numpy(), np.eye(3), atol=1e-6)
    a, b, c = np.radians([10.0, -20.0, 30.0])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    np.testing.assert_allclose(r.numpy(), (rz @ ry @ rx).T, atol=1e-6)


def test_pose_degrees_spans_the_bins() -> None:
    logits = torch.full((2, 66), -1e4)
    logits[0, 0] = 0
    logits[1, 65] = 0
    np.testing.assert_allclose(motion.pose_degrees(logits).numpy(), [-97.5, 97.5])


@pytest.mark.parametrize("frame", FRAMES)
def test_relative_motion_step_by_step(reference: dict, networks: motion.Networks, frame: str) -> None:
    source, initial, driving = info(reference, "source"), info(reference, "t0"), info(reference, frame)
    options = motion.MotionOptions()
    prepared = motion.prepare_motion(source, initial, options)
    result = motion.relative_motion(
        source, prepared.R_s, driving, driving.rotation(), initial, prepared.R_d0, region="all"
    )
    close(result.R, reference[f"{frame}/R_new"])
    close(result.delta, reference[f"{frame}/delta_new"])
    close(result.scale, reference[f"{frame}/scale_new"])
    close(result.t, reference[f"{frame}/t_new"])
    assert float(result.t[0, 2]) == 0.0
    close(result.x, reference[f"{frame}/x_d_i"])
    before = motion.expression_friendly(result.x, prepared.x_d0, prepared.x_s, prepared.multiplier)
    close(before, reference[f"{frame}/x_d_i_new_before_stitching"])
    with torch.no_grad():
        close(
            motion.stitching_delta(networks.stitching, prepared.x_s, before),
            reference[f"{frame}/stitch_delta"],
        )
        close(motion.drive(prepared, driving, options, networks), reference[f"{frame}/x_d_i_new"])


def test_motion_multiplier_is_the_hull_volume_ratio(reference: dict) -> None:
    prepared = motion.prepare_motion(info(reference, "source"), info(reference, "t0"), motion.MotionOptions())
    assert prepared.multiplier == pytest.approx(float(reference["motion_multiplier"].reshape(())), abs=1e-7)
    close(prepared.x_d0, reference["t0/x_d_i"])
    # a cube of side 2 has volume 8; doubling the points doubles the side: multiplier 1/sqrt(8)
    cube = torch.tensor([[[x, y, z] for x in (0.0, 2.0) for y in (0.0, 2.0) for z in (0.0, 2.0)]])
    assert motion.hull_volume(cube) == pytest.approx(8.0)
    assert motion.motion_multiplier(cube, cube * 2) == pytest.approx(1 / np.sqrt(8))
    off = motion.prepare_motion(
        info(reference, "source"), info(reference, "t0"), motion.MotionOptions(expression_friendly=False)
    )
    assert off.multiplier == 1.0


def test_batched_frames_match_frame_by_frame(reference: dict, networks: motion.Networks) -> None:
    prepared = motion.prepare_motion(info(reference, "source"), info(reference, "t0"), motion.MotionOptions())
    with torch.no_grad():
        x = motion.drive(prepared, batch(reference, FRAMES), motion.MotionOptions(), networks)
    close(x, np.concatenate([reference[f"{f}/x_d_i_new"] for f in FRAMES]))


def test_absolute_motion(reference: dict, networks: motion.Networks) -> None:
    source, driving = info(reference, "source"), info(reference, "t2")
    options = motion.MotionOptions(relative=False)
    prepared = motion.prepare_motion(source, info(reference, "t0"), options)
    result = motion.absolute_motion(source, prepared.R_s, driving, driving.rotation())
    for ours, theirs in (
        ("R", "R_new"),
        ("delta", "delta_new"),
        ("scale", "scale_new"),
        ("t", "t_new"),
        ("x", "x_d_i"),
    ):
        close(getattr(result, ours), reference[f"absolute/t2/{theirs}"])
    assert prepared.multiplier == 1.0  # no expression-friendly step in absolute mode
    with torch.no_grad():
        close(motion.drive(prepared, driving, options, networks), reference["absolute/t2/x_d_i_new"])
    # the expression entries absolute motion takes from the driving frame, and no others
    taken = ~np.isclose(result.delta.numpy()[0], reference["source/exp"][0])
    expected = np.zeros((21, 3), dtype=bool)
    for k, coords in motion.ABSOLUTE_EXPRESSION:
        expected[k, coords] = True
    assert not (taken & ~expected).any()
    assert taken.sum() > 30


@pytest.mark.parametrize("relative", [True, False])
def test_regions_move_only_their_part(reference: dict, relative: bool) -> None:
    source, initial, driving = info(reference, "source"), info(reference, "t0"), info(reference, "t2")
    R_s, R_d = source.rotation(), driving.rotation()

    def run(region: str) -> motion.Motion:
        if relative:
            return motion.relative_motion(source, R_s, driving, R_d, initial, initial.rotation(), region)
        return motion.absolute_motion(source, R_s, driving, R_d, region)

    every = run("all")
    pose, exp, lips, eyes = run("pose"), run("exp"), run("lips"), run("eyes")
    t_s = source.t.clone()
    t_s[:, 2] = 0
    # pose: rotation and translation as "all", the source's expression and scale
    assert torch.equal(pose.R, every.R) and torch.equal(pose.t, every.t)
    assert torch.equal(pose.delta, source.exp) and torch.equal(pose.scale, source.scale)
    # exp: the expression as "all", the source's pose, scale and translation
    assert torch.equal(exp.delta, every.delta) and torch.equal(exp.R, R_s)
    assert torch.equal(exp.scale, source.scale) and torch.equal(exp.t, t_s)
    for part, index in ((lips, motion.LIP_KEYPOINTS), (eyes, motion.EYE_KEYPOINTS)):
        others = [k for k in range(21) if k not in index]
        assert torch.equal(part.delta[:, list(index)], every.delta[:, list(index)])
        assert torch.equal(part.delta[:, others], source.exp[:, others])
        assert torch.equal(part.R, R_s) and torch.equal(part.t, t_s)
    assert not torch.equal(every.delta, source.exp) and not torch.equal(every.R, R_s)


def test_region_names() -> None:
    assert motion.check_region("lip") == "lips"
    assert motion.MotionOptions(region="lip").region == "lips"
    with pytest.raises(AnimaticaError, match="region"):
        motion.MotionOptions(region="nose")


def test_driving_multiplier_scales_the_whole_motion(reference: dict, networks: motion.Networks) -> None:
    source, initial, driving = info(reference, "source"), info(reference, "t0"), info(reference, "t3")
    with torch.no_grad():
        prepared = motion.prepare_motion(source, initial, motion.MotionOptions())
        full = motion.drive(prepared, driving, motion.MotionOptions(), networks)
        none = motion.drive(prepared, driving, motion.MotionOptions(driving_multiplier=0.0), networks)
        half = motion.drive(prepared, driving, motion.MotionOptions(driving_multiplier=0.5), networks)
    close(none, reference["source/x_s"])
    close(half, (reference["source/x_s"] + reference["t3/x_d_i_new"]) / 2)
    assert not torch.allclose(full, none)


def test_no_stitching_leaves_the_keypoints_before_it(reference: dict) -> None:
    options = motion.MotionOptions(stitching=False)
    prepared = motion.prepare_motion(info(reference, "source"), info(reference, "t0"), options)
    x = motion.drive(prepared, info(reference, "t1"), options, motion.Networks())
    close(x, reference["t1/x_d_i_new_before_stitching"])


def test_retargeting_in_the_motion(reference: dict, networks: motion.Networks) -> None:
    """Relative: eye and lip deltas on the source keypoints, then stitching; absolute: on the driving ones.

    A frame without a measurement (NaN ratios) gets no delta.
    """
    source, initial, driving = (
        info(reference, "source"),
        info(reference, "t0"),
        batch(reference, ("t1", "t2")),
    )
    x_s = torch.from_numpy(reference["source/x_s"])
    eye = torch.from_numpy(reference["retarget/eye_ratio"]).repeat(2, 1)
    lip = torch.from_numpy(reference["retarget/lip_ratio"]).repeat(2, 1)
    lip[1] = float("nan")
    eye_delta = torch.from_numpy(reference["retarget/eye_delta"])
    lip_delta = torch.from_numpy(reference["retarget/lip_delta"])
    options = motion.MotionOptions(eye_retargeting=True, lip_retargeting=True)
    with torch.no_grad():
        prepared = motion.prepare_motion(source, initial, options)
        x = motion.drive(prepared, driving, options, networks, eye_ratios=eye, lip_ratios=lip)
        close(x[:1], motion.stitch(networks.stitching, x_s, x_s + eye_delta + lip_delta).numpy())
        close(x[1:], motion.stitch(networks.stitching, x_s, x_s + eye_delta).numpy())
        absolute = motion.MotionOptions(relative=False, eye_retargeting=True, stitching=False)
        prepared = motion.prepare_motion(source, initial, absolute)
        x = motion.drive(prepared, driving, absolute, networks, eye_ratios=eye)
        close(x[1:], reference["absolute/t2/x_d_i"] + reference["retarget/eye_delta"])


def landmarks68(eye_open: float, lip_open: float) -> np.ndarray:
    """A schematic 68-point face: eyes 30 px wide, mouth 50 px wide, openings as given (ratios)."""
    lm = np.zeros((68, 2))
    for first, cx in ((36, 70.0), (42, 130.0)):
        half = eye_open * 30 / 2
        lm[first + 0] = (cx - 15, 100)
        lm[first + 3] = (cx + 15, 100)
        lm[first + 1], lm[first + 2] = (cx - 5, 100 - half), (cx + 5, 100 - half)
        lm[first + 5], lm[first + 4] = (cx - 5, 100 + half), (cx + 5, 100 + half)
    lm[48], lm[54] = (75, 160), (125, 160)
    lm[62], lm[66] = (100, 160 - lip_open * 25), (100, 160 + lip_open * 25)
    return lm


def test_openness_from_68_landmarks() -> None:
    np.testing.assert_allclose(motion.eye_open_ratios(landmarks68(0.3, 0.0)), [0.3, 0.3], atol=1e-6)
    assert motion.eye_target(landmarks68(0.1, 0.0)) == pytest.approx(0.1, abs=1e-6)
    assert motion.lip_open_ratio(landmarks68(0.3, 0.0)) == pytest.approx(0.0, abs=1e-9)
    assert motion.lip_open_ratio(landmarks68(0.3, 0.4)) == pytest.approx(0.4, abs=1e-6)
    # the measure does not depend on the picture's scale or position
    lm = landmarks68(0.25, 0.2)
    assert motion.lip_open_ratio(lm * 3 + 7) == pytest.approx(motion.lip_open_ratio(lm), abs=1e-6)
    one_closed = landmarks68(0.3, 0.0)
    one_closed[43:45, 1] = one_closed[46:48, 1] = 100  # second eye shut
    np.testing.assert_allclose(motion.eye_open_ratios(one_closed), [0.3, 0.0], atol=1e-6)


def test_edited_keypoints_and_state(reference: dict) -> None:
    source = info(reference, "source")
    close(motion.edited_keypoints(source), reference["source/x_s"])
    turned = motion.edited_keypoints(source, yaw=15.0)
    assert not torch.allclose(turned, torch.from_numpy(reference["source/x_s"]), atol=1e-3)
    shifted = motion.edited_keypoints(source, shift=(0.1, -0.2))
    close(shifted - torch.tensor([0.1, -0.2, 0.0]), reference["source/x_s"])
    prepared = motion.prepare_motion(source, info(reference, "t0"), motion.MotionOptions())
    again = motion.SourceMotion.from_dict(prepared.to_dict())
    assert again.multiplier == prepared.multiplier
    assert torch.equal(again.x_d0, prepared.x_d0) and torch.equal(again.source.kp, prepared.source.kp)
