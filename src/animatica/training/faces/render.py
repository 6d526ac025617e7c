"""Draw a synthetic face: flat shapes on a supersampled canvas, then light and shadow in numpy.

Shapes (hair, skin, eyes, brows, nose, lips) are drawn with Pillow on a canvas
``SUPERSAMPLE`` times larger than the frame and box-filtered down, which gives clean
anti-aliased edges at any size for little cost. Roundness comes afterwards: the skin's mask,
blurred, acts as a height map whose slope gives a surface normal, lit from the clip's light
direction; soft shadow and highlight masks (eye sockets, the side of the nose, under the nose
and the lower lip) add the cues a face detector keys on.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull

from animatica.training.faces.geometry import (
    EYE_Y,
    TEMPLE_Y,
    Camera,
    head_top,
    jaw_outline,
    project_face,
    surface_points,
)
from animatica.training.faces.params import skin_colour

SUPERSAMPLE = 4
Colour = tuple[int, int, int]


def _rgb(colour: np.ndarray) -> Colour:
    r, g, b = (round(255 * float(c)) for c in np.clip(colour, 0, 1))
    return r, g, b


def _smooth(points: np.ndarray, steps: int = 6, closed: bool = False) -> np.ndarray:
    """A Catmull-Rom curve through ``points`` (N, D), ``steps`` samples per segment."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        p = np.concatenate([p[-1:], p, p[:2]])
    else:
        p = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    t = np.linspace(0.0, 1.0, steps, endpoint=False)[None, :, None]
    p0, p1, p2, p3 = (p[i : len(p) - 3 + i, None] for i in range(4))  # (segments, 1, D) each
    curve = 0.5 * (
        2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    curve = curve.reshape(-1, p.shape[1])
    return curve if closed else np.concatenate([curve, p[-2:-1]])


def background(scene: dict[str, float], size: int) -> np.ndarray:
    """The clip's static background, (size, size, 3) float in [0, 1]."""
    first = np.array([scene[f"background_1_{c}"] for c in "rgb"])
    second = np.array([scene[f"background_2_{c}"] for c in "rgb"])
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    kind = int(scene["background"])
    if kind == 0:
        m = 0.25 * (xx**2 + yy**2) * 2  # plain, with a faint vignette
    elif kind == 1:
        angle = scene["background_angle"]
        m = np.clip(0.5 + math.cos(angle) * xx + math.sin(angle) * yy, 0, 1)
    else:
        rng = np.random.default_rng(int(scene["background_seed"]))
        noise = gaussian_filter(rng.normal(0, 1, (size, size)), sigma=size / 7, mode="wrap")
        m = np.clip(0.5 + noise / (3 * noise.std() + 1e-9), 0, 1)
    return first * (1 - m[..., None]) + second * m[..., None]


class _Painter:
    """Draws head-coordinate shapes onto the supersampled canvas and its masks."""

    def __init__(self, camera: Camera, canvas: Image.Image) -> None:
        self.camera = camera
        self.canvas = canvas
        side = canvas.size[0]
        self.draw = ImageDraw.Draw(canvas)
        self.skin = Image.new("L", (side, side), 0)
        self.shadow = Image.new("L", (side, side), 0)
        self.light = Image.new("L", (side, side), 0)
        self.masks = {m: ImageDraw.Draw(getattr(self, m)) for m in ("skin", "shadow", "light")}
        self.unit = camera.scale * SUPERSAMPLE  # canvas pixels per head unit

    def xy(self, points: np.ndarray, posed: bool = True) -> list[float]:
        return self.to_canvas(self.camera.project(points, posed))

    @staticmethod
    def to_canvas(pixels: np.ndarray) -> list[float]:
        """Frame pixel coordinates (centres at integers) to canvas coordinates, flat x, y, x, y..."""
        return (pixels * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2).ravel().tolist()

    def polygon(self, points: np.ndarray, fill: Colour | None, mask: str | None = None, value: int = 255,
                posed: bool = True) -> None:  # fmt: skip
        xy = self.xy(points, posed)
        if fill is not None:
            self.draw.polygon(xy, fill=fill)
        if mask is not None:
            self.masks[mask].polygon(xy, fill=value)

    def line(self, points: np.ndarray, fill: Colour | None, width: float, mask: str | None = None,
             value: int = 255) -> None:  # fmt: skip
        xy = self.xy(points)
        w = max(1, round(width * self.unit))
        if fill is not None:
            self.draw.line(xy, fill=fill, width=w, joint="curve")
        if mask is not None:
            self.masks[mask].line(xy, fill=value, width=w, joint="curve")


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
    a = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(a), cy + ry * np.sin(a)], axis=-1)


def _hair_colour(identity: dict[str, float], skin: np.ndarray) -> tuple[np.ndarray, float]:
    """Hair colour and volume; close-cropped hair (style 3) lets the scalp show through."""
    hair = np.array([identity[f"hair_{c}"] for c in "rgb"])
    if int(identity["hair_style"]) == 3:
        return 0.55 * skin + 0.45 * hair, 0.03
    return hair, identity["hair_volume"]


def _hair_behind(paint: _Painter, identity: dict[str, float], skin: np.ndarray) -> None:
    """Long (style 2) or curly (style 4) hair hanging behind the head, drawn first."""
    style = int(identity["hair_style"])
    if style not in (2, 4):
        return
    hair, volume = _hair_colour(identity, skin)
    w, length = identity["face_width"], identity["face_length"]
    grow = volume + (0.3 if style == 4 else 0.12)
    top = head_top(identity, 48, grow)
    if style == 4:
        b = np.linspace(math.pi, 0.0, len(top))
        top[:, :2] *= (1 + 0.05 * np.sin(11 * b))[:, None]
        bottom = 0.55 * length
    else:
        bottom = 1.7 * length
    sides = np.array([[1.15 * w + grow, bottom, -0.6], [-1.15 * w - grow, bottom, -0.6]])
    shape = np.concatenate([sides[:1], top, sides[1:]])
    shape[:, 2] = np.minimum(shape[:, 2], -0.5)
    paint.polygon(shape, _rgb(hair * 0.8))


def _hair_cap(paint: _Painter, identity: dict[str, float], skin: np.ndarray) -> np.ndarray:
    """The hair over the skull; returns the hairline (head coordinates, image left to right)."""
    style = int(identity["hair_style"])
    hair, volume = _hair_colour(identity, skin)
    w, length = identity["face_width"], identity["face_length"]
    n = 40
    outer = head_top(identity, n, volume + (0.25 if style == 4 else 0.0))  # image right -> left
    if style == 4:
        b = np.linspace(math.pi, 0.0, n)
        outer[:, :2] *= (1 + 0.04 * np.sin(11 * b))[:, None]
    b = np.linspace(0.0, math.pi, n)  # image left -> right
    temple = TEMPLE_Y * length + 0.06
    forehead = EYE_Y - 0.8 * length - identity["hairline"] - (0.15 if style == 3 else 0.0)
    y = temple - (temple - forehead) * np.sin(b) ** 0.45
    x = -np.cos(b) * w * 0.97
    if style == 1:  # a side-swept fringe covering part of the forehead
        side = 1.0 if identity["hairline"] > 0.11 else -1.0
        y = y + 0.32 * np.clip((side * x + 0.35 * w) / (1.3 * w), 0, 1) * np.sin(b) ** 2
    line = surface_points(np.stack([x, y], axis=-1), identity, 0.02)
    # The hair is one mass over the skull, down to the sideburns; the face is drawn over it below
    # the hairline.
    ends = outer[[-1, 0]].copy()
    ends[:, 1] = temple + 0.1
    mass = paint.camera.project(np.concatenate([ends, outer, line]))
    paint.draw.polygon(paint.to_canvas(mass[ConvexHull(mass).vertices]), fill=_rgb(hair))
    if style != 3:
        # Strands: darker and lighter lines from the hairline up to the crown give the hair texture.
        crown = outer[::-1]
        for i in range(2, n - 2, 2):
            tone = 0.72 if i % 4 else 1.25
            paint.line(np.stack([line[i], crown[i]]), _rgb(hair * tone), 0.02)
    # The hair shades the forehead just below the hairline.
    shade = surface_points(np.stack([x, y + 0.09], axis=-1), identity)
    paint.line(shade[4:-4], None, 0.12, "shadow", 70)
    return line


def _face(paint: _Painter, silhouette: np.ndarray, hairline: np.ndarray, skin: np.ndarray) -> None:
    """Skin inside the silhouette and below the hairline (both given in pixels / head units)."""
    side = paint.canvas.size[0]
    outline = Image.new("L", (side, side), 0)
    ImageDraw.Draw(outline).polygon(paint.to_canvas(silhouette), fill=255)
    far = 4.0
    left, right = hairline[0].copy(), hairline[-1].copy()
    below = np.concatenate(
        [
            [[-far, left[1], left[2]]],
            hairline,
            [[far, right[1], right[2]], [far, far, -0.5], [-far, far, -0.5]],
        ]
    )
    under = Image.new("L", (side, side), 0)
    ImageDraw.Draw(under).polygon(paint.xy(below), fill=255)
    mask = ImageChops.multiply(outline, under)
    paint.canvas.paste(_rgb(skin), (0, 0, side, side), mask)
    paint.skin.paste(255, (0, 0, side, side), mask)


def _eye(paint: _Painter, pts: np.ndarray, identity: dict[str, float], skin: np.ndarray) -> None:
    """One eye from its six head-coordinate landmarks (corner, two upper, corner, two lower)."""
    upper2d = _smooth(pts[[0, 1, 2, 3], :2], 6)
    lower2d = _smooth(pts[[3, 4, 5, 0], :2], 6)
    lift = -0.05
    upper = surface_points(upper2d, identity, lift)
    lower = surface_points(lower2d, identity, lift)
    centre = (pts[0, :2] + pts[3, :2]) / 2
    half = 0.235 * identity["eye_size"]
    socket = _ellipse(centre[0], centre[1] - 0.04, 1.35 * half, 0.27, 20)
    paint.polygon(surface_points(socket, identity), None, "shadow", 80)
    paint.polygon(np.concatenate([upper, lower[1:-1]]), _rgb(np.array([0.9, 0.88, 0.85])))
    iris_colour = np.array([identity[f"iris_{c}"] for c in "rgb"])
    iris_r = 0.46 * half
    iris = surface_points(_ellipse(centre[0], EYE_Y - 0.01, iris_r, iris_r), identity, lift + 0.01)
    paint.polygon(iris, _rgb(iris_colour))
    pupil = surface_points(
        _ellipse(centre[0], EYE_Y - 0.01, 0.42 * iris_r, 0.42 * iris_r), identity, lift + 0.015
    )
    paint.polygon(pupil, _rgb(np.array([0.04, 0.03, 0.03])))
    glint = surface_points(
        _ellipse(centre[0] - 0.3 * iris_r, EYE_Y - 0.4 * iris_r, 0.13 * iris_r, 0.13 * iris_r, 10),
        identity,
        lift + 0.02,
    )
    paint.polygon(glint, (240, 240, 240))
    # Lids: skin over everything outside the opening, then the lash line and the lid crease.
    above = surface_points(upper2d + np.array([0.0, -0.2]), identity, lift)
    below = surface_points(lower2d + np.array([0.0, 0.15]), identity, lift)
    paint.polygon(np.concatenate([upper, above[::-1]]), _rgb(skin * 0.93))
    paint.polygon(np.concatenate([lower, below[::-1]]), _rgb(skin))
    paint.line(upper, _rgb(np.array([0.08, 0.06, 0.05])), 0.028)
    paint.line(lower[1:-1], _rgb(skin * 0.72), 0.012)
    crease = surface_points(
        upper2d[2:-2] + np.array([0.0, -0.075 * identity["eye_open"] - 0.03]), identity, lift
    )
    paint.line(crease, _rgb(skin * 0.7), 0.014)


def _brow(paint: _Painter, pts: np.ndarray, identity: dict[str, float], inner_last: bool) -> None:
    centre = _smooth(pts[:, :2], 5)
    t = np.linspace(0.0, 1.0, len(centre))
    taper = 0.55 + 0.45 * (t if inner_last else 1 - t)
    thick = identity["brow_thickness"] * taper
    top = surface_points(centre - np.stack([0 * thick, 0.35 * thick], -1), identity, 0.03)
    bottom = surface_points(centre + np.stack([0 * thick, 0.65 * thick], -1), identity, 0.03)
    hair = np.array([identity[f"hair_{c}"] for c in "rgb"])
    paint.polygon(np.concatenate([top, bottom[::-1]]), _rgb(0.5 * hair + 0.02))


def _nose(
    paint: _Painter, lm: np.ndarray, identity: dict[str, float], skin: np.ndarray, light_x: float
) -> None:
    nw = identity["nose_width"]
    tip = lm[30]
    bridge = lm[27:31]
    for side in (-1.0, 1.0):
        # The side of the nose away from the light is in shadow; the lit side only a little.
        value = 120 if side * light_x > 0 else 55
        flank = bridge.copy()
        flank[:, 0] += side * np.array([0.1, 0.11, 0.13, 0.16]) * nw
        flank[:, 2] -= 0.08
        paint.line(flank, None, 0.07, "shadow", value)
        wing = np.array(
            [
                [side * 0.17 * nw, tip[1] - 0.1],
                [side * 0.26 * nw, tip[1] + 0.0],
                [side * 0.21 * nw, tip[1] + 0.1],
            ]
        )
        wing3 = surface_points(_smooth(wing, 5), identity, 0.12 * identity["nose_depth"])
        paint.line(wing3, _rgb(skin * 0.68), 0.02)
        nostril = _ellipse(side * 0.11 * nw, tip[1] + 0.075, 0.05 * nw, 0.025, 16)
        paint.polygon(surface_points(nostril, identity, 0.16 * identity["nose_depth"]), _rgb(skin * 0.32))
    under = _ellipse(0.0, tip[1] + 0.16, 0.17 * nw, 0.05)
    paint.polygon(surface_points(under, identity, 0.05), None, "shadow", 90)
    paint.line(bridge[1:], None, 0.035, "light", 150)
    paint.polygon(
        np.column_stack([_ellipse(tip[0], tip[1] - 0.01, 0.05, 0.035, 12), np.full(12, tip[2])]),
        None,
        "light",
        200,
    )


def _mouth(paint: _Painter, lm: np.ndarray, identity: dict[str, float], skin: np.ndarray) -> None:
    m = lm[48:68]
    outer_up, outer_low = m[0:7], m[[6, 7, 8, 9, 10, 11, 0]]
    inner_up, inner_low = m[12:17], m[[16, 17, 18, 19, 12]]

    def curve(points: np.ndarray) -> np.ndarray:
        flat = _smooth(points[:, :2], 5)
        return surface_points(flat, identity, 0.05)

    ou, ol, iu, il = curve(outer_up), curve(outer_low), curve(inner_up), curve(inner_low)
    paint.polygon(np.concatenate([iu, il[1:-1]]), _rgb(np.array([0.28, 0.07, 0.07])))
    gap = float(np.max(il[:, 1]) - np.max(iu[:, 1]))
    if gap > 0.02:
        teeth = iu.copy()
        teeth[:, 1] += min(0.45 * gap, 0.075)
        paint.polygon(np.concatenate([iu, teeth[::-1]]), _rgb(np.array([0.9, 0.88, 0.82])))
    lip = skin * 0.8 * (0.62 - 0.2 * identity["lip_red"]) + np.array([0.72, 0.3, 0.3]) * (
        0.38 + 0.2 * identity["lip_red"]
    )
    paint.polygon(np.concatenate([ou, iu[::-1]]), _rgb(lip * 0.9))
    paint.polygon(np.concatenate([ol, il[::-1]]), _rgb(lip))
    paint.line(np.concatenate([ou[:1], iu, ou[-1:]]), _rgb(lip * 0.45), 0.016)
    for corner in (m[0], m[6]):  # the mouth corners sit in small folds of shadow
        fold = _ellipse(float(corner[0]), float(corner[1]), 0.05, 0.04, 12)
        paint.polygon(surface_points(fold, identity, 0.03), None, "shadow", 140)
    below = _ellipse(0.0, float(m[9, 1]) + 0.07, 0.22, 0.05)
    paint.polygon(surface_points(below, identity, 0.02), None, "shadow", 85)
    paint.line(curve(m[[8, 9, 10]]) + np.array([0.0, -0.03, 0.0]), None, 0.03, "light", 120)


def render_frame(
    identity: dict[str, float],
    scene: dict[str, float],
    frame: dict[str, float],
    size: int,
    backdrop: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame, (size, size, 3) uint8, and its 68 landmarks, (68, 2) float pixels (centres at integers).

    ``backdrop`` is ``background(scene, size)``, passed in when rendering many frames of a scene.
    """
    camera = Camera(frame, scene, size)
    silhouette, landmarks, lm3 = project_face(identity, frame, camera)
    skin = skin_colour(identity)
    back = background(scene, size) if backdrop is None else backdrop
    side = size * SUPERSAMPLE
    canvas = Image.fromarray(np.clip(np.rint(back * 255), 0, 255).astype(np.uint8)).resize(
        (side, side), Image.Resampling.NEAREST
    )
    paint = _Painter(camera, canvas)
    w, length = identity["face_width"], identity["face_length"]
    _hair_behind(paint, identity, skin)
    # Neck and shoulders do not turn with the head.
    neck = np.array(
        [[-0.5 * w, 0.3, -0.5], [0.5 * w, 0.3, -0.5], [0.56 * w, 3.0, -0.5], [-0.56 * w, 3.0, -0.5]]
    )
    paint.polygon(neck, _rgb(skin * 0.8), posed=False)
    shirt = np.array([scene[f"shirt_{c}"] for c in "rgb"])
    chin = 1.2 * length
    a = np.linspace(0.0, math.pi, 16)
    neckline = np.stack(
        [
            -0.62 * w * np.cos(a),
            chin + 0.42 + (0.35 if scene["collar"] else 0.12) * np.sin(a) ** 2,
            np.full(16, -0.5),
        ],
        -1,
    )
    if scene["collar"]:
        neckline[:, 1] = chin + 0.42 + 0.45 * (1 - np.abs(np.cos(a)))
    shoulders = np.concatenate(
        [[[-3.0, chin + 3.0, -0.5], [-2.6, chin + 0.75, -0.5], [-1.2, chin + 0.45, -0.5]], neckline,
         [[1.2, chin + 0.45, -0.5], [2.6, chin + 0.75, -0.5], [3.0, chin + 3.0, -0.5]]]
    )  # fmt: skip
    paint.polygon(shoulders, _rgb(shirt), posed=False)
    for side_sign in (-1.0, 1.0):
        cx = side_sign * (w + 0.03)
        ear = np.column_stack(
            [
                _ellipse(cx, EYE_Y + 0.2, 0.12 * identity["ear_size"], 0.24 * identity["ear_size"]),
                np.full(24, -0.42),
            ]
        )
        paint.polygon(ear, _rgb(skin * 0.95), "skin")
        inner = np.column_stack(
            [_ellipse(cx + side_sign * 0.02, EYE_Y + 0.2, 0.06, 0.15, 16), np.full(16, -0.41)]
        )
        paint.polygon(inner, None, "shadow", 130)
    jaw = jaw_outline(identity, frame)
    # The chin casts a shadow on the neck: the jaw line is what the landmark predictor follows.
    under = jaw[6:-6].copy()
    under[:, 1] += 0.22
    paint.polygon(np.concatenate([jaw[6:-6], under[::-1]]), None, "shadow", 170)
    hairline = _hair_cap(paint, identity, skin)
    _face(paint, silhouette, hairline, skin)
    light_angle = scene["light_angle"]
    light_x = math.cos(light_angle)
    for spot, value in (((0.0, -1.0), 90), ((-0.5, 0.25), 60), ((0.5, 0.25), 60)):
        shape = surface_points(_ellipse(spot[0], spot[1], 0.3, 0.16, 16), identity)
        paint.polygon(shape, None, "light", value)
    _brow(paint, lm3[17:22], identity, inner_last=True)
    _brow(paint, lm3[22:27], identity, inner_last=False)
    _eye(paint, lm3[36:42], identity, skin)
    _eye(paint, lm3[42:48], identity, skin)
    _nose(paint, lm3, identity, skin, light_x)
    _mouth(paint, lm3, identity, skin)
    image = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float64) / 255
    unit = camera.scale  # frame pixels per head unit
    masks = [
        np.asarray(getattr(paint, m).reduce(SUPERSAMPLE), dtype=np.float64) / 255
        for m in ("skin", "shadow", "light")
    ]
    skin_mask, shadow, light = masks
    # Shading: the blurred skin mask is a height map; its slope tilts the normal towards the edges.
    sigma = 0.22 * unit
    height = gaussian_filter(skin_mask, sigma)
    gy, gx = np.gradient(height)
    k = 2.2 * sigma
    nx, ny = -gx * k, -gy * k
    norm = np.maximum(1.0, np.hypot(nx, ny) / 0.95)
    nx, ny = nx / norm, ny / norm
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    lx, ly, lz = math.cos(light_angle) * 0.8, math.sin(light_angle) * 0.8, 0.6
    lambert = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
    strength = scene["light_strength"]
    shade = 1 - strength + strength * 1.35 * lambert
    image *= (1 + skin_mask * (shade - 1))[..., None]
    image *= (1 - 0.5 * gaussian_filter(shadow, 0.05 * unit))[..., None]
    glow = gaussian_filter(light, 0.04 * unit)[..., None]
    image += 0.18 * glow * (1 - image)
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), landmarks
