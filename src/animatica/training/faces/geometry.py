"""The 3-D face behind the renderer: 68 landmarks and the outlines drawn around them.

Points live in head coordinates — x to the image's right, y down, z towards the camera; the
face is about 2 units wide, the eyes sit near y = -0.3 and the chin near y = 1.25 — and are
built from the identity parameters, moved by the expression, then turned by the head pose and
projected with a mild perspective. The 68 points follow the iBUG 300-W order that dlib's
predictor uses (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, lips 48-67), so the renderer's
own landmarks can be compared with what a detector finds.

Pose signs: positive yaw turns the nose towards the image's right, positive pitch tips it down,
positive roll turns the face clockwise on screen; angles in degrees.
"""

from __future__ import annotations

import math

import numpy as np

_CAMERA = 8.0  # camera distance in face units: a portrait lens, little distortion
_PIVOT = np.array([0.0, 0.35, -0.9])  # the head turns about a point behind the face, above the neck
EYE_Y = -0.3
TEMPLE_Y = -0.4  # where the jaw line meets the skull outline, per unit of face length
# Where the 17 jaw landmarks sit along the jaw line (0 = the temple on the image's left, 90 =
# the chin): spaced as dlib's predictor places them on these faces, denser near the chin.
_HALF_JAW = np.array([0.0, 4.0, 12.5, 22.5, 33.5, 46.5, 61.5, 77.5])
_JAW_ANGLES = np.radians(np.concatenate([_HALF_JAW, [90.0], 180.0 - _HALF_JAW[::-1]]))
_PIXELS_PER_UNIT = 0.25  # of the frame side, at scene scale 1


def _surface(x: np.ndarray, y: np.ndarray, identity: dict[str, float]) -> np.ndarray:
    """Depth of the face's front surface: a flattened ellipsoid, receding at the sides and chin."""
    w = identity["face_width"]
    side = np.clip(x / (1.05 * w), -1, 1)
    return 0.55 * np.sqrt(1 - 0.85 * side**2) - 0.1 * ((y - 0.1) / identity["face_length"]) ** 2


def _jaw(a: np.ndarray, identity: dict[str, float], drop: float) -> np.ndarray:
    """Jaw line from the face's right ear (a = 0, image left) under the chin to the left (a = pi)."""
    w, length = identity["face_width"], identity["face_length"]
    exponent = 2.0 / identity["jaw_round"]
    c, s = np.cos(a), np.abs(np.sin(a))
    down = s**exponent
    x = -np.sign(c) * np.abs(c) ** exponent * w * (1 - (1 - identity["jaw_width"]) * down**2)
    y0, chin = TEMPLE_Y * length, 1.2 * length
    y = y0 + (chin - y0) * down + drop * down**3
    z = -0.45 + 0.7 * down**2
    return np.stack([x, y, z], axis=-1)


def _head_top(b: np.ndarray, identity: dict[str, float], grow: float = 0.0) -> np.ndarray:
    """Skull outline over the forehead, from the right temple (b = 0, image left) to the left one."""
    w, length = identity["face_width"], identity["face_length"]
    y0 = TEMPLE_Y * length
    x = -np.cos(b) * w * (1.0 + grow)
    y = y0 - (1.1 * length + grow * 1.2) * np.sin(b) ** 0.9
    z = -0.45 + 0.35 * np.sin(b)
    return np.stack([x, y, z], axis=-1)


def _eye(side: int, identity: dict[str, float], frame: dict[str, float]) -> np.ndarray:
    """Six eye points in iBUG order for the image-left (side -1) or image-right (side +1) eye."""
    cx = side * identity["eye_spacing"] * identity["face_width"]
    half = 0.235 * identity["eye_size"]
    up = 0.115 * identity["eye_open"] * identity["eye_size"]
    low = 0.065 * identity["eye_size"]
    tilt = identity["eye_tilt"]
    blink = frame["blink"]
    smile = frame["smile"]
    lid = EYE_Y - up + blink * (up + 0.85 * low)  # upper lid closes onto the lower one
    lower = EYE_Y + low - 0.35 * smile * low  # smiling lifts the lower lid
    outer, inner = cx + side * half, cx - side * half
    third = side * half / 3
    # The outer corner sits ``tilt`` higher; the lid points share the tilt proportionally.
    pts = [
        (outer, EYE_Y - tilt),
        (cx + third, lid - tilt * 0.66),
        (cx - third, lid - tilt * 0.33),
        (inner, EYE_Y),
        (cx - third, lower - tilt * 0.33),
        (cx + third, lower - tilt * 0.66),
    ]
    if side > 0:  # the image-right eye starts at its inner corner
        pts = [pts[3], pts[2], pts[1], pts[0], pts[5], pts[4]]
    return np.array(pts)


def _brow(side: int, identity: dict[str, float], frame: dict[str, float]) -> np.ndarray:
    """Five brow points along its upper middle, from outer to inner (image-left brow, side -1)."""
    w = identity["face_width"]
    t = np.linspace(0.0, 1.0, 5)  # 0 outer, 1 inner
    x = side * w * (0.86 - 0.68 * t)
    raise_ = frame["brows"]
    y = (
        EYE_Y
        - 0.26
        + identity["brow_height"]
        + 0.04 * (1 - t) ** 2  # the outer end droops
        - identity["brow_arch"] * np.sin(math.pi * (1 - t) ** 0.8)
        - 0.09 * raise_
        + 0.05 * max(0.0, -raise_) * t  # a frown lowers and knits the inner ends
    )
    x = x - side * 0.04 * max(0.0, -raise_) * t
    if side > 0:
        x, y = x[::-1], y[::-1]  # iBUG: 22 (inner) to 26 (outer) for the image-right brow
    return np.stack([x, y], axis=-1)


def _mouth(identity: dict[str, float], frame: dict[str, float], nose_tip: float) -> np.ndarray:
    """The 20 lip points 48-67."""
    length = identity["face_length"]
    half = 0.39 * identity["mouth_width"]
    smile, gap = frame["smile"], 0.32 * length * frame["mouth_open"]
    half = half * (1 + 0.12 * smile) * (1 - 0.1 * frame["mouth_open"])
    y = nose_tip + 0.37 * length
    up, low = identity["lip_upper"], identity["lip_lower"]

    def line(r: np.ndarray, lift: float) -> np.ndarray:
        """The lip line at fractions r of the half width; smiling curls the corners up."""
        return y - lift * smile * np.abs(r) ** 2

    r_outer_up = np.array([-1.0, -0.55, -0.2, 0.0, 0.2, 0.55, 1.0])
    bow = np.array([0.0, 0.8, 1.0, 0.82, 1.0, 0.8, 0.0])  # the cupid's bow
    upper = np.stack([r_outer_up * half, line(r_outer_up, 0.08) - up * bow - 0.2 * gap * bow], -1)
    r_lower = np.array([0.6, 0.25, 0.0, -0.25, -0.6])
    fall = np.array([0.8, 0.97, 1.0, 0.97, 0.8])
    lower = np.stack([r_lower * half, line(r_lower, 0.08) + gap * fall + low * fall], -1)
    r_inner_up = np.array([-0.86, -0.4, 0.0, 0.4, 0.86])
    inner_up = np.stack([r_inner_up * half, line(r_inner_up, 0.08) - 0.2 * gap * (1 - r_inner_up**2)], -1)
    r_inner_low = np.array([0.4, 0.0, -0.4])
    inner_low = np.stack([r_inner_low * half, line(r_inner_low, 0.08) + gap * (1 - 0.3 * r_inner_low**2)], -1)
    return np.concatenate([upper, lower, inner_up, inner_low])


def landmarks_3d(identity: dict[str, float], frame: dict[str, float]) -> np.ndarray:
    """The 68 landmarks in head coordinates (before pose), (68, 3)."""
    length = identity["face_length"]
    drop = 0.29 * length * frame["mouth_open"]
    jaw = _jaw(_JAW_ANGLES, identity, drop)
    brows = np.concatenate([_brow(-1, identity, frame), _brow(1, identity, frame)])
    nose_len = 0.66 * length * identity["nose_length"]
    tip = EYE_Y + nose_len
    depth = identity["nose_depth"]
    bridge = np.stack(
        [np.zeros(4), EYE_Y + nose_len * np.array([0.0, 0.33, 0.66, 1.0]), np.zeros(4)], axis=-1
    )
    bridge_rise = depth * np.array([0.05, 0.14, 0.24, 0.36])
    nw = identity["nose_width"]
    base_x = np.array([-0.2, -0.1, 0.0, 0.1, 0.2]) * nw
    base = np.stack([base_x, tip + 0.09 + 0.03 * np.abs(base_x) / nw, np.zeros(5)], axis=-1)
    base_rise = depth * np.array([0.07, 0.16, 0.21, 0.16, 0.07])
    eyes = np.concatenate([_eye(-1, identity, frame), _eye(1, identity, frame)])
    mouth = _mouth(identity, frame, tip)
    flat = np.concatenate([brows, eyes, mouth])
    face_z = _surface(flat[:, 0], flat[:, 1], identity)
    lift = np.concatenate([np.full(10, 0.03), np.full(12, -0.05), np.full(20, 0.05)])
    flat3 = np.column_stack([flat, face_z + lift])
    bridge[:, 2] = _surface(bridge[:, 0], bridge[:, 1], identity) + bridge_rise
    base[:, 2] = _surface(base[:, 0], base[:, 1], identity) + base_rise
    return np.concatenate([jaw, flat3[:10], bridge, base, flat3[10:]])


def surface_points(points2d: np.ndarray, identity: dict[str, float], lift: float = 0.0) -> np.ndarray:
    """Put 2-D head-coordinate points on the face surface (plus ``lift``), (N, 3)."""
    z = _surface(points2d[:, 0], points2d[:, 1], identity) + lift
    return np.column_stack([points2d, z])


def jaw_outline(identity: dict[str, float], frame: dict[str, float], n: int = 48) -> np.ndarray:
    drop = 0.29 * identity["face_length"] * frame["mouth_open"]
    return _jaw(np.linspace(0.0, math.pi, n), identity, drop)


def head_top(identity: dict[str, float], n: int = 40, grow: float = 0.0) -> np.ndarray:
    return _head_top(np.linspace(math.pi, 0.0, n), identity, grow)


def _outline_points(identity: dict[str, float], frame: dict[str, float]) -> np.ndarray:
    """Points whose projections' convex hull is the head's silhouette in any pose: the jaw line and
    skull outline, plus the cheeks' front surface, which forms the outline on the side the face
    turns towards."""
    jaw = jaw_outline(identity, frame)
    cheeks = []
    for shrink in (0.92, 0.82):
        inner = jaw[3:-3].copy()
        inner[:, 0] *= shrink
        inner[:, 2] = np.maximum(inner[:, 2], _surface(inner[:, 0], inner[:, 1], identity) - 0.05)
        cheeks.append(inner)
    return np.concatenate([jaw, head_top(identity), *cheeks])


def _ray_hits(origin: np.ndarray, through: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Where rays from ``origin`` through each of ``through`` (N, 2) leave a convex polygon."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    edge = b - a
    out = through.copy()
    for i, point in enumerate(through):
        ray = point - origin
        denom = ray[0] * edge[:, 1] - ray[1] * edge[:, 0]
        rel = a - origin
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (rel[:, 0] * edge[:, 1] - rel[:, 1] * edge[:, 0]) / denom
            s = (rel[:, 0] * ray[1] - rel[:, 1] * ray[0]) / denom
        hits = t[(np.abs(denom) > 1e-12) & (s >= -1e-9) & (s <= 1 + 1e-9) & (t > 0)]
        if hits.size:
            out[i] = origin + hits.min() * ray
    return out


def project_face(
    identity: dict[str, float], frame: dict[str, float], camera: Camera
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The posed face in pixels: (silhouette polygon (K, 2), 68 landmarks (68, 2), landmarks in head
    coordinates (68, 3)).

    Jaw landmarks follow the visible outline, as annotators place them: each is pushed along the
    ray from the nose bridge through it out to the silhouette (a no-op where the jaw line itself
    is the outline, a move onto the cheek where the head turns and hides it).
    """
    from scipy.spatial import ConvexHull

    lm3 = landmarks_3d(identity, frame)
    points = camera.project(lm3)
    outline = camera.project(_outline_points(identity, frame))
    silhouette = outline[ConvexHull(outline).vertices]
    points[:17] = _ray_hits(points[29], points[:17], silhouette)
    return silhouette, points, lm3


def rotation(frame: dict[str, float]) -> np.ndarray:
    """Head rotation matrix for the frame's yaw, pitch and roll (degrees)."""
    yaw, pitch, roll = (math.radians(frame[k]) for k in ("yaw", "pitch", "roll"))
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])  # nose (z > 0) to +x
    nod = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])  # nose to +y (down)
    tilt = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])  # clockwise on screen (y down)
    return tilt @ nod @ turn


class Camera:
    """Head coordinates to pixel coordinates (pixel centres at integers) for one frame."""

    def __init__(self, frame: dict[str, float], scene: dict[str, float], size: int) -> None:
        self.matrix = rotation(frame)
        self.scale = _PIXELS_PER_UNIT * scene["scale"] * size
        self.centre = np.array([0.5 + scene["shift_x"], 0.5 + scene["shift_y"]]) * size - 0.5

    def posed(self, points: np.ndarray) -> np.ndarray:
        return (points - _PIVOT) @ self.matrix.T + _PIVOT

    def project(self, points: np.ndarray, posed: bool = True) -> np.ndarray:
        p = self.posed(points) if posed else points
        factor = _CAMERA / (_CAMERA - p[:, 2])
        return p[:, :2] * factor[:, None] * self.scale + self.centre
