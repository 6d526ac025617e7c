"""LivePortrait's motion maths: from the motion extractor's raw output to the keypoints that warp the source.

Notation (B frames, N = 21 implicit keypoints): canonical keypoints ``kp`` (B, N, 3), head pose
``pitch, yaw, roll`` in degrees, expression ``exp`` (B, N, 3), ``scale`` (B, 1), translation ``t``
(B, 3). The transformed keypoints are ``x = scale · (kp · R + exp) + (tx, ty, 0)``: keypoints are row
vectors multiplied on the right by R, which is why `rotation` returns the transpose of Rz·Ry·Rx
(the public implementation's convention, kept so that its formulas compose as written), and tz is
never used.

Per driving frame i (source s, initial driving frame 0), relative motion gives

    R_new = R_d,i · R_d,0ᵀ · R_s      δ_new = δ_s + (δ_d,i − δ_d,0)
    s_new = s_s · s_d,i / s_d,0        t_new = t_s + (t_d,i − t_d,0), z set to 0
    x_d,i = s_new · (kp_s · R_new + δ_new) + t_new

and absolute motion takes the driving frame's own pose and translation and a fixed subset of its
expression (`ABSOLUTE_EXPRESSION`). The animated region limits what moves
(`motion_options.REGIONS`). Then come, in this order: the expression-friendly step (relative
motion only: the motion since frame 0 scaled by the multiplier m = sqrt(V(x_s) / V(x_d,0)) of the
keypoints' 3-D convex-hull volumes), the eye/lip retargeting deltas, the stitching network, and
the driving multiplier ``x_s + (x_d − x_s) · k``. Each step is a public function: the engine
chains them in `drive`, and still-portrait editing (pose change, eye and lip openness) uses the
same pieces.

Every operation is ordered as in the public implementation, so that float32 results agree with it
to rounding; the few places where the order matters say so.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from scipy.spatial import ConvexHull

from animatica.liveportrait.motion_options import MotionOptions, check_region

NUM_KP = 21
POSE_BINS = 66  # 3-degree bins: angle = 3 · E[bin] − 97.5, i.e. −97.5° .. 97.5°

# Keypoints whose expression moves the lips / the eyes (those the public implementation animates
# for its "lip" and "eyes" regions).
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
# Absolute motion copies only these expression entries from the driving frame (keypoint index,
# coordinates); the rest stays the source's, which keeps the source's face shape.
ABSOLUTE_EXPRESSION: tuple[tuple[int, slice], ...] = (
    *((k, slice(0, 3)) for k in (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)),
    (3, slice(1, 2)),
    (4, slice(1, 2)),
    (5, slice(2, 3)),
    (8, slice(2, 3)),
    (9, slice(1, 3)),
)


# --------------------------------------------------------------------------------------------
# Keypoint information


@dataclass
class KeypointInfo:
    """What the motion extractor says about B images, angles already in degrees."""

    pitch: torch.Tensor  # (B,) degrees
    yaw: torch.Tensor  # (B,)
    roll: torch.Tensor  # (B,)
    t: torch.Tensor  # (B, 3)
    exp: torch.Tensor  # (B, N, 3)
    scale: torch.Tensor  # (B, 1)
    kp: torch.Tensor  # (B, N, 3) canonical keypoints

    def rotation(self) -> torch.Tensor:
        """(B, 3, 3), the transposed matrix (see `rotation`)."""
        return rotation(self.pitch, self.yaw, self.roll)

    def __len__(self) -> int:
        return int(self.kp.shape[0])

    def to(self, device: torch.device | str) -> "KeypointInfo":
        return KeypointInfo(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def to_dict(self) -> dict[str, torch.Tensor]:
        """Plain CPU tensors, for a saved state."""
        return {f.name: getattr(self, f.name).detach().to("cpu", copy=True).clone() for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], device: torch.device | str = "cpu") -> "KeypointInfo":
        values = {}
        for f in fields(cls):
            value = data[f.name]
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"keypoint info {f.name!r} is not a tensor")
            values[f.name] = value.to(device, copy=True)
        return cls(**values)


def pose_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees: the softmax expectation of the bin index, times 3, minus 97.5."""
    probabilities = torch.softmax(logits, dim=1)
    bins = torch.arange(POSE_BINS, dtype=logits.dtype, device=logits.device)
    return (probabilities * bins).sum(dim=1) * 3 - 97.5


def keypoint_info(raw: Mapping[str, torch.Tensor]) -> KeypointInfo:
    """The motion extractor's raw output as a `KeypointInfo`, pose angles turned into degrees.

    ``kp`` and ``exp`` arrive as (B, 63); their 63 values of ``kp`` and ``exp`` are keypoint-major (N x 3).
    """
    b = raw["kp"].shape[0]
    return KeypointInfo(
        pitch=pose_degrees(raw["pitch"].float()),
        yaw=pose_degrees(raw["yaw"].float()),
        roll=pose_degrees(raw["roll"].float()),
        t=raw["t"].float(),
        exp=raw["exp"].float().reshape(b, -1, 3),
        scale=raw["scale"].float(),
        kp=raw["kp"].float().reshape(b, -1, 3),
    )


def rotation(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Angles in degrees ((B,) or (B, 1)) -> (B, 3, 3) = (Rz(roll) · Ry(yaw) · Rx(pitch))ᵀ.

    Transposed because keypoints are row vectors multiplied on the right (``kp @ R``).
    """
    x, y, z = (a.reshape(-1) / 180 * math.pi for a in (pitch, yaw, roll))
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rot_x = torch.stack([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1).view(-1, 3, 3)
    rot_y = torch.stack([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1).view(-1, 3, 3)
    rot_z = torch.stack([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1).view(-1, 3, 3)
    return (rot_z @ rot_y @ rot_x).transpose(1, 2)


def keypoints(
    kp: torch.Tensor, R: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """x = scale · (kp · R + exp) + (tx, ty, 0).

    kp, exp (B or 1, N, 3), R (B, 3, 3), scale (B, 1), t (B, 3).
    """
    t_xy0 = t.clone()
    t_xy0[..., 2] = 0
    return scale[:, :, None] * (kp @ R + exp) + t_xy0[:, None, :]


def transform_keypoints(info: KeypointInfo, R: torch.Tensor | None = None) -> torch.Tensor:
    """The image's own transformed keypoints (B, N, 3) (x_s for a source)."""
    return keypoints(info.kp, info.rotation() if R is None else R, info.exp, info.scale, info.t)


# --------------------------------------------------------------------------------------------
# Motion of a driving frame


@dataclass
class Motion:
    """The pose, expression, scale and translation given to the source's canonical keypoints."""

    R: torch.Tensor  # (B, 3, 3)
    delta: torch.Tensor  # (B, N, 3)
    scale: torch.Tensor  # (B, 1)
    t: torch.Tensor  # (B, 3), z zeroed
    x: torch.Tensor  # (B, N, 3) = scale · (kp_s · R + delta) + t


def _expand(value: torch.Tensor, batch: int) -> torch.Tensor:
    return value.expand(batch, *value.shape[1:]).clone()


def _finish(
    kp_s: torch.Tensor, R: torch.Tensor, delta: torch.Tensor, scale: torch.Tensor, t: torch.Tensor
) -> Motion:
    t = t.clone()
    t[..., 2] = 0  # tz is never used
    return Motion(R, delta, scale, t, scale[:, :, None] * (kp_s @ R + delta) + t[:, None, :])


def relative_motion(
    source: KeypointInfo,
    R_s: torch.Tensor,
    driving: KeypointInfo,
    R_d: torch.Tensor,
    initial: KeypointInfo,
    R_d0: torch.Tensor,
    region: str = "all",
) -> Motion:
    """The change of the driving frames since the initial frame, applied to the source (B driving frames).

    Regions: ``all`` moves everything; ``pose`` rotation and translation only; ``exp`` the whole
    expression only; ``lips`` / ``eyes`` the expression of the lip / eye keypoints only. The scale
    follows the driving face only for ``all``.
    """
    region = check_region(region)
    b = len(driving)
    # (R_d · R_d0ᵀ) · R_s in this association, as the public implementation
    R_new = (R_d @ R_d0.transpose(1, 2)) @ R_s if region in ("all", "pose") else _expand(R_s, b)
    moved = source.exp + (driving.exp - initial.exp)
    if region in ("all", "exp"):
        delta = moved
    else:
        delta = _expand(source.exp, b)
        if region in ("lips", "eyes"):
            index = list(LIP_KEYPOINTS if region == "lips" else EYE_KEYPOINTS)
            delta[:, index, :] = moved[:, index, :]
    scale = source.scale * (driving.scale / initial.scale) if region == "all" else _expand(source.scale, b)
    t = source.t + (driving.t - initial.t) if region in ("all", "pose") else _expand(source.t, b)
    return _finish(source.kp, R_new, delta, scale, t)


def absolute_motion(
    source: KeypointInfo, R_s: torch.Tensor, driving: KeypointInfo, R_d: torch.Tensor, region: str = "all"
) -> Motion:
    """The driving frames' own pose and translation and part of their expression, on the source's shape.

    Only the expression entries of `ABSOLUTE_EXPRESSION` (``all`` / ``exp``), or of the lip / eye
    keypoints (``lips`` / ``eyes``), are taken from the driving frame; the scale stays the source's.
    """
    region = check_region(region)
    b = len(driving)
    R_new = R_d.clone() if region in ("all", "pose") else _expand(R_s, b)
    delta = _expand(source.exp, b)
    if region in ("all", "exp"):
        for k, coords in ABSOLUTE_EXPRESSION:
            delta[:, k, coords] = driving.exp[:, k, coords]
    elif region in ("lips", "eyes"):
        index = list(LIP_KEYPOINTS if region == "lips" else EYE_KEYPOINTS)
        delta[:, index, :] = driving.exp[:, index, :]
    t = driving.t if region in ("all", "pose") else _expand(source.t, b)
    return _finish(source.kp, R_new, delta, _expand(source.scale, b), t)


def hull_volume(points: torch.Tensor | np.ndarray) -> float:
    """Volume of the 3-D convex hull of (N, 3) points."""
    array = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    return float(ConvexHull(array.reshape(-1, 3).astype(np.float32)).volume)


def motion_multiplier(x_s: torch.Tensor, x_d0: torch.Tensor) -> float:
    """sqrt(V(x_s)) / sqrt(V(x_d,0)) for one source and one initial frame, (1, N, 3) each.

    It makes the driving face's motion the size of the source face's. For an image source with
    relative motion x_d,0 equals x_s up to rounding, so the multiplier is 1 up to rounding.
    """
    return float(np.sqrt(hull_volume(x_s)) / np.sqrt(hull_volume(x_d0)))


def expression_friendly(
    x_d: torch.Tensor, x_d0: torch.Tensor, x_s: torch.Tensor, multiplier: float
) -> torch.Tensor:
    """(x_d − x_d,0) · m + x_s: the motion since the initial frame, scaled, on the source keypoints."""
    return (x_d - x_d0) * multiplier + x_s


# --------------------------------------------------------------------------------------------
# Stitching and retargeting networks applied to keypoints


def _flat(x: torch.Tensor, batch: int) -> torch.Tensor:
    return x.expand(batch, *x.shape[1:]).reshape(batch, -1)


def stitching_delta(stitching: torch.nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """The stitching network's output (B, 3N + 2) for source (1 or B, N, 3) and driving (B, N, 3) points."""
    b = x_d.shape[0]
    return stitching(torch.cat([_flat(x_s, b), _flat(x_d, b)], dim=1))


def apply_stitching(x_d: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """x_d plus the first 3N outputs as per-keypoint offsets, then the last two added to every x and y."""
    b, n = x_d.shape[:2]
    out = x_d + delta[:, : 3 * n].reshape(b, n, 3)
    out[..., :2] += delta[:, 3 * n : 3 * n + 2].reshape(b, 1, 2)
    return out


def stitch(stitching: torch.nn.Module, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Driving keypoints corrected by the stitching network, so the face stays attached to the shoulders."""
    return apply_stitching(x_d, stitching_delta(stitching, x_s, x_d))


def eye_delta(eye: torch.nn.Module, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """Keypoint deltas (B, N, 3) that give the source's eyes a target openness.

    ``ratios`` (B, 3) are [source eye ratio (first eye), (second eye), target ratio]; see
    `combined_eye_ratios`.
    """
    b, n = ratios.shape[0], x_s.shape[1]
    return eye(torch.cat([_flat(x_s, b), ratios.to(x_s)], dim=1)).reshape(b, n, 3)


def lip_delta(lip: torch.nn.Module, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """Keypoint deltas (B, N, 3) that give the source's lips a target openness.

    ``ratios`` (B, 2) are [source lip ratio, target ratio]; see `combined_lip_ratios`.
    """
    b, n = ratios.shape[0], x_s.shape[1]
    return lip(torch.cat([_flat(x_s, b), ratios.to(x_s)], dim=1)).reshape(b, n, 3)


def driving_multiplier(x_s: torch.Tensor, x_d: torch.Tensor, factor: float) -> torch.Tensor:
    """x_s + (x_d − x_s) · factor: more (> 1) or less (< 1) of the whole motion."""
    return x_s + (x_d - x_s) * factor


# --------------------------------------------------------------------------------------------
# Eye and lip openness from 68-point landmarks
#
# The public implementation measures openness on its own 203-point landmarks: per eye the distance
# between the middles of the upper and lower lid over the distance between the eye corners, and
# for the mouth the distance between the middles of the inner upper and lower lip over the
# distance between the mouth corners. The same quantities on the 68-point layout (dlib / iBUG):
# an eye's lid middles are the midpoints of its two upper (37, 38 / 43, 44) and two lower
# (41, 40 / 47, 46) lid points, its corners 36, 39 / 42, 45; the inner lip middles are 62 and 66,
# the mouth corners 48 and 54. The eye of the 36..41 points (on the left of the picture) is the
# first eye. Ratios do not depend on the picture's size.

_EYES = ((36, (37, 38), (41, 40), 39), (42, (43, 44), (47, 46), 45))


def eye_open_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks -> (2,) lid opening over eye width, for the two eyes (about 0.3 when open)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    ratios = []
    for corner_a, upper, lower, corner_b in _EYES:
        opening = np.linalg.norm(lm[list(upper)].mean(0) - lm[list(lower)].mean(0))
        ratios.append(opening / (np.linalg.norm(lm[corner_a] - lm[corner_b]) + 1e-6))
    return np.asarray(ratios, dtype=np.float32)


def lip_open_ratio(landmarks: np.ndarray) -> float:
    """(68, 2) landmarks -> inner-lip opening over mouth width (0 when the lips touch)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(lm[62] - lm[66]) / (np.linalg.norm(lm[48] - lm[54]) + 1e-6))


def combined_eye_ratios(
    source_eyes: Sequence[float], targets: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """The eye network's ratio input (B, 3): the source's two eye ratios and one target per row.

    The target is one number for both eyes (the public implementation feeds the first driving eye;
    Animatica feeds the mean of both, `eye_target`, which does not depend on which eye is first).
    """
    target = torch.as_tensor(targets, dtype=torch.float32).reshape(-1, 1)
    source = torch.tensor([float(source_eyes[0]), float(source_eyes[1])], dtype=torch.float32)
    return torch.cat([source.expand(target.shape[0], 2), target], dim=1)


def combined_lip_ratios(source_lip: float, targets: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """The lip network's ratio input (B, 2): the source's lip ratio and one target per row."""
    target = torch.as_tensor(targets, dtype=torch.float32).reshape(-1, 1)
    return torch.cat([torch.full_like(target, float(source_lip)), target], dim=1)


def eye_target(landmarks: np.ndarray) -> float:
    """One eye-openness target from a face's landmarks: the mean of its two eye ratios."""
    return float(eye_open_ratios(landmarks).mean())


# --------------------------------------------------------------------------------------------
# The whole per-frame motion


@dataclass
class SourceMotion:
    """Everything about the source and the initial driving frame that each frame's motion needs."""

    source: KeypointInfo  # B = 1
    R_s: torch.Tensor  # (1, 3, 3)
    x_s: torch.Tensor  # (1, N, 3)
    initial: KeypointInfo  # the initial driving frame, B = 1
    R_d0: torch.Tensor  # (1, 3, 3)
    x_d0: torch.Tensor  # (1, N, 3): the initial frame's keypoints by the motion formula
    multiplier: float  # the expression-friendly multiplier (1.0 when that step is off)

    def to_dict(self) -> dict[str, Any]:
        def cpu(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to("cpu", copy=True).clone()

        return {
            "source": self.source.to_dict(),
            "R_s": cpu(self.R_s),
            "x_s": cpu(self.x_s),
            "initial": self.initial.to_dict(),
            "R_d0": cpu(self.R_d0),
            "x_d0": cpu(self.x_d0),
            "multiplier": float(self.multiplier),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], device: torch.device | str = "cpu") -> "SourceMotion":
        def on(value: Any) -> torch.Tensor:
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"expected a tensor, got {type(value).__name__}")
            return value.to(device, copy=True)

        return cls(
            source=KeypointInfo.from_dict(data["source"], device),
            R_s=on(data["R_s"]),
            x_s=on(data["x_s"]),
            initial=KeypointInfo.from_dict(data["initial"], device),
            R_d0=on(data["R_d0"]),
            x_d0=on(data["x_d0"]),
            multiplier=float(data["multiplier"]),
        )


def frame_motion(
    prepared: SourceMotion, driving: KeypointInfo, R_d: torch.Tensor, options: MotionOptions
) -> Motion:
    """The motion formula of the options' mode and region (before any of the later steps)."""
    s = prepared
    if options.relative:
        return relative_motion(s.source, s.R_s, driving, R_d, s.initial, s.R_d0, options.region)
    return absolute_motion(s.source, s.R_s, driving, R_d, options.region)


def prepare_motion(source: KeypointInfo, initial: KeypointInfo, options: MotionOptions) -> SourceMotion:
    """The once-per-job part: source keypoints, the initial frame's motion and the multiplier."""
    R_s = source.rotation()
    R_d0 = initial.rotation()
    x_s = transform_keypoints(source, R_s)
    partial = SourceMotion(source, R_s, x_s, initial, R_d0, x_s, 1.0)
    x_d0 = frame_motion(partial, initial, R_d0, options).x
    multiplier = 1.0
    if options.relative and options.expression_friendly:
        multiplier = motion_multiplier(x_s, x_d0)
    return SourceMotion(source, R_s, x_s, initial, R_d0, x_d0, multiplier)


@dataclass
class Networks:
    """The small networks `drive` uses (any may be None when its step is off)."""

    stitching: torch.nn.Module | None = None
    eye: torch.nn.Module | None = None
    lip: torch.nn.Module | None = None


def drive(
    prepared: SourceMotion,
    driving: KeypointInfo,
    options: MotionOptions,
    networks: Networks,
    eye_ratios: torch.Tensor | None = None,
    lip_ratios: torch.Tensor | None = None,
) -> torch.Tensor:
    """The keypoints (B, N, 3) that the warping module receives for B driving frames.

    ``eye_ratios`` (B, 3) / ``lip_ratios`` (B, 2) are the retargeting networks' inputs (see
    `combined_eye_ratios`); a row of NaN means "no measurement for this frame" and gives no delta.
    With retargeting on, relative motion keeps only the eye / lip deltas on the source keypoints
    (as the public implementation does: retargeting replaces the driving motion), absolute motion
    adds them to the driving keypoints.
    """
    x_s = prepared.x_s
    x_d = frame_motion(prepared, driving, driving.rotation(), options).x
    if options.relative and options.expression_friendly:
        x_d = expression_friendly(x_d, prepared.x_d0, x_s, prepared.multiplier)
    if options.eye_retargeting or options.lip_retargeting:
        x_d = (x_s.expand_as(x_d) if options.relative else x_d).clone()
        for on, ratios, delta_of, net in (
            (options.eye_retargeting, eye_ratios, eye_delta, networks.eye),
            (options.lip_retargeting, lip_ratios, lip_delta, networks.lip),
        ):
            if not on or ratios is None:
                continue
            if net is None:
                raise ValueError("retargeting asked for without its network")
            measured = ~torch.isnan(ratios).any(dim=1)
            delta = delta_of(net, x_s, torch.nan_to_num(ratios.to(x_s)))
            x_d = x_d + delta * measured.to(x_d)[:, None, None]
    if options.stitching:
        if networks.stitching is None:
            raise ValueError("stitching asked for without the stitching network")
        x_d = stitch(networks.stitching, x_s, x_d)
    return driving_multiplier(x_s, x_d, options.driving_multiplier)


# --------------------------------------------------------------------------------------------
# Editing a still


def edited_keypoints(
    info: KeypointInfo,
    pitch: float = 0.0,
    yaw: float = 0.0,
    roll: float = 0.0,
    shift: Sequence[float] = (0.0, 0.0),
) -> torch.Tensor:
    """The source's keypoints with its head turned by (pitch, yaw, roll) degrees and moved by ``shift``.

    ``shift`` is in keypoint units (the image spans about −1..1). Add `eye_delta` / `lip_delta`
    and `stitch` for the full portrait edit.
    """
    device = info.pitch.device
    R = rotation(info.pitch + pitch, info.yaw + yaw, info.roll + roll)
    t = info.t + torch.tensor([float(shift[0]), float(shift[1]), 0.0], device=device)
    return keypoints(info.kp, R, info.exp, info.scale, t)
