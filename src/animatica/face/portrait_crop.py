"""Portrait crops framed the way LivePortrait frames them, and pasting an animated crop back.

LivePortrait's networks were trained on square crops with a set framing, and its public
implementation finds that framing from face landmarks: the line from the centre of the eyes to
the centre of the mouth is the face's vertical axis; the landmarks are measured in the frame of
that axis; the square is ``scale`` times their larger extent, moved ``vy`` crop sides along the
axis (towards the forehead when negative), and turned so the axis stands upright. Its defaults
are ``scale`` 2.3 and ``vy`` -0.125 for the source picture, cut at 512 pixels, and 2.2 and -0.1,
not turned, for a driving video. Animatica computes the same framing from dlib's 68 landmarks,
so no InsightFace model (licensed for non-commercial research only) is needed.

A crop is a `CropWindow` (centre, side, angle in the picture): a pure description from which the
``(2, 3)`` affine matrix to a crop of any size follows, so the window found once for the source
serves the 256-pixel network input and the 512-pixel output alike. Matrices act on pixel indices
(pixel ``i`` is centred on ``i``) and map the window's square exactly onto the crop's square.

A driving video is framed on every frame where the face is looked for (`track_windows`, the same
two-pass tracker and smoothing as ``face.crop``), so only one small array per frame is kept,
never the frames. Its crop is not turned: the head's roll is motion the engine must see.

`PasteBack` puts an engine's square output back into the full picture through the inverse
matrix, weighted by a mask of our own: a rounded square in crop coordinates, fully opaque
inside, fading smoothly to nothing in a band before the crop's edge. Pixels outside the mask are
the picture's own, untouched.
"""

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from animatica.errors import AnimaticaError
from animatica.face.analyzer import FaceAnalyzer, get_analyzer, select_face
from animatica.face.crop import track_boxes

DEFAULT_SIZE = 512  # the side LivePortrait cuts its source crop at
# The largest side of a picture that animated crops are pasted back into. Larger photos are
# scaled down to it first: the network sees a 256-pixel crop, so more pixels add nothing to the
# face, while every output frame is a whole picture to blend and encode, and the H.264 levels
# most players decode stop at 4096 pixels wide.
PASTE_BACK_MAX_SIDE = 1920


@dataclass(frozen=True)
class Framing:
    """How a crop is placed around a face's landmarks."""

    scale: float  # crop side / the landmarks' larger extent, measured along the face's own axes
    vx: float  # shift of the crop centre across the face, in crop sides
    vy: float  # shift along the eyes-to-mouth axis, in crop sides (negative: towards the forehead)
    rotate: bool  # turn the crop so that the eyes-to-mouth axis is vertical


LIVEPORTRAIT_SOURCE = Framing(scale=2.3, vx=0.0, vy=-0.125, rotate=True)
LIVEPORTRAIT_DRIVING = Framing(scale=2.2, vx=0.0, vy=-0.1, rotate=False)
# The framing of ``face.crop`` (1.8 face boxes, a tenth up), upright: for other square-crop
# engines whose output is pasted back.
PLAIN_SOURCE = Framing(scale=1.8, vx=0.0, vy=-0.1, rotate=True)
PLAIN_DRIVING = Framing(scale=1.8, vx=0.0, vy=-0.1, rotate=False)
# The framing of the synthetic faces the vaegan engine's models learn from (``animatica data synth
# --kind faces``): measured on their neutral frames, the frame is 2.1 times the landmarks' extent,
# centred 0.08 frame sides above their middle. A photo cropped the same way looks to the model
# like its training data.
VAEGAN_SOURCE = Framing(scale=2.1, vx=0.0, vy=-0.08, rotate=True)
VAEGAN_DRIVING = Framing(scale=2.1, vx=0.0, vy=-0.08, rotate=False)


def framings(engine: str) -> tuple[Framing, Framing]:
    """(source, driving) framing for an engine's crops."""
    if engine == "liveportrait":
        return LIVEPORTRAIT_SOURCE, LIVEPORTRAIT_DRIVING
    if engine == "vaegan":
        return VAEGAN_SOURCE, VAEGAN_DRIVING
    return PLAIN_SOURCE, PLAIN_DRIVING


# The engines whose framing ``animatica crop --framing`` offers besides its plain square box.
ENGINE_FRAMINGS = ("liveportrait", "vaegan")


def engine_framing(engine: str, *, photo: bool) -> Framing:
    """The framing ``engine`` cuts a photo with (``photo``) or a driving video with."""
    if engine not in ENGINE_FRAMINGS:
        raise AnimaticaError(f"Unknown framing {engine!r}; use plain, {', '.join(ENGINE_FRAMINGS)}.")
    source, driving = framings(engine)
    return source if photo else driving


@dataclass(frozen=True)
class CropWindow:
    """A square in the picture: centre (``cx``, ``cy``), ``side`` and ``angle``.

    ``angle`` (radians) is the direction of the crop's x axis in the picture, clockwise on screen
    (the picture's y points down): a head tilted by ``angle`` comes out of the crop upright.
    """

    cx: float
    cy: float
    side: float
    angle: float = 0.0

    def matrix(self, size: int) -> np.ndarray:
        """``(2, 3)`` affine map from picture pixels to the pixels of a ``size``-pixel crop."""
        s = size / self.side
        c, n = math.cos(self.angle), math.sin(self.angle)
        # Rows are the crop's axes in the picture: x = (c, n), y = (-n, c), scaled to crop pixels.
        lin = s * np.array([[c, n], [-n, c]])
        middle = (size - 1) / 2
        return np.c_[lin, middle - lin @ np.array([self.cx, self.cy])]

    def inverse(self, size: int) -> np.ndarray:
        """``(2, 3)`` affine map from crop pixels back to picture pixels."""
        return invert_affine(self.matrix(size))

    def to_array(self) -> np.ndarray:
        return np.array([self.cx, self.cy, self.side, self.angle], dtype=np.float64)

    @classmethod
    def from_array(cls, values: np.ndarray) -> "CropWindow":
        cx, cy, side, *rest = (float(v) for v in values)
        return cls(cx, cy, side, rest[0] if rest else 0.0)


def invert_affine(m: np.ndarray) -> np.ndarray:
    lin = np.linalg.inv(m[:, :2])
    return np.c_[lin, -lin @ m[:, 2]]


def face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(across, down): unit vectors of the face's frame from 68 landmarks.

    ``down`` runs from the midpoint of the two eye centres (each the middle of its corners) to
    the middle of the mouth corners, as LivePortrait measures the head's roll; ``across`` is
    perpendicular to it, pointing to the picture's right on an upright face.
    """
    p = np.asarray(points, dtype=np.float64)
    eyes = ((p[36] + p[39]) / 2 + (p[42] + p[45]) / 2) / 2
    mouth = (p[48] + p[54]) / 2
    down = mouth - eyes
    length = float(np.linalg.norm(down))
    down = down / length if length > 1e-3 else np.array([0.0, 1.0])
    return np.array([down[1], -down[0]]), down


def window_from_landmarks(points: np.ndarray, framing: Framing = LIVEPORTRAIT_SOURCE) -> CropWindow:
    """The crop window of one face's 68 landmarks (``(68, 2)`` x, y) with ``framing``."""
    p = np.asarray(points, dtype=np.float64)
    across, down = face_axes(p)
    axes = np.stack([across, down])  # (2, 2): rows are the face's axes
    mean = p.mean(axis=0)
    local = (p - mean) @ axes.T  # landmarks in the face's frame
    lo, hi = local.min(axis=0), local.max(axis=0)
    side = float((hi - lo).max()) * framing.scale
    middle = (lo + hi) / 2 + np.array([framing.vx, framing.vy]) * side
    centre = mean + middle @ axes
    angle = math.atan2(across[1], across[0]) if framing.rotate else 0.0
    return CropWindow(float(centre[0]), float(centre[1]), side, angle)


def _pil_affine(m: np.ndarray) -> tuple[float, ...]:
    """Pillow's coefficients for output-index -> input-index map ``m``: Pillow puts pixel
    ``i``'s centre at ``i + 0.5``, so the map is shifted by half a pixel on both sides."""
    lin, t = m[:, :2], m[:, 2]
    t = t + 0.5 - lin @ np.array([0.5, 0.5])
    return (lin[0, 0], lin[0, 1], t[0], lin[1, 0], lin[1, 1], t[1])


def _affine(image: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, 3)`` float32: bicubic samples of ``image`` at ``m`` (output index -> input index)
    for an output of ``size`` = (w, h). Done per channel in floating point: Pillow's 8-bit affine
    transform truncates, which would darken every crop and paste-back by half a grey level."""
    array = np.asarray(image, dtype=np.float32)
    data = _pil_affine(m)
    channels = [
        Image.fromarray(np.ascontiguousarray(array[..., c]), mode="F").transform(
            size, Image.Transform.AFFINE, data, Image.Resampling.BICUBIC
        )
        for c in range(array.shape[2])
    ]
    return np.stack([np.asarray(c) for c in channels], axis=-1)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _footprint(inverse: np.ndarray, size: int, margin: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: the picture pixels a ``size`` crop reads, plus ``margin``."""
    e = size - 0.5
    corners = np.array([[-0.5, -0.5], [e, -0.5], [-0.5, e], [e, e]]) @ inverse[:, :2].T + inverse[:, 2]
    x0, y0 = np.floor(corners.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(corners.max(axis=0) + margin).astype(int) + 1
    return int(x0), int(y0), int(x1), int(y1)


def _region(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with the picture's edge pixels repeated wherever it reaches outside."""
    h, w = image.shape[:2]
    if x0 >= 0 and y0 >= 0 and x1 <= w and y1 <= h:
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    ys = np.clip(np.arange(y0, y1), 0, h - 1)
    xs = np.clip(np.arange(x0, x1), 0, w - 1)
    return np.ascontiguousarray(image[ys][:, xs])


def warp_crop(image: np.ndarray, window: CropWindow, size: int) -> np.ndarray:
    """The ``size`` x ``size`` crop of ``image`` (``(H, W, 3)`` uint8) in ``window``.

    Parts of the window beyond the picture repeat its edge pixels: pasting back then never mixes
    in a dark border, and the network never sees an artificial edge. A window much larger than
    the crop is first box-averaged by a whole factor (so a face filling a 4K frame does not
    alias), and bicubic interpolation does the remaining step.
    """
    inverse = window.inverse(size)  # crop index -> picture index
    k = max(1, int(window.side / size))  # whole reduction factor, the rest left to bicubic
    x0, y0, x1, y1 = _footprint(inverse, size, margin=2.0 + k)
    x1 = x0 + -(-(x1 - x0) // k) * k  # whole blocks of k
    y1 = y0 + -(-(y1 - y0) // k) * k
    region = _region(image, x0, y0, x1, y1)
    # Region (or reduced-region) index j covers picture indices x0 + k j ... x0 + k j + k - 1.
    to_region = np.array([[1 / k, 0, -(x0 + (k - 1) / 2) / k], [0, 1 / k, -(y0 + (k - 1) / 2) / k]])
    if k > 1:  # box average in floating point (Pillow's 8-bit reduce rounds each block)
        h, w = region.shape[0] // k, region.shape[1] // k
        region = region.reshape(h, k, w, k, 3).mean(axis=(1, 3), dtype=np.float32)
    m = to_region[:, :2] @ inverse  # crop index -> region index
    m[:, 2] += to_region[:, 2]
    return _to_uint8(_affine(region, m, (size, size)))


@dataclass
class PortraitCrop:
    image: np.ndarray  # (size, size, 3) uint8
    window: CropWindow
    matrix: np.ndarray  # (2, 3) picture -> crop
    inverse: np.ndarray  # (2, 3) crop -> picture
    landmarks: np.ndarray  # (68, 2) in picture pixels
    found_by: str  # which scan found the face (``analyzer.SCANS``)


def crop_portrait(
    image: np.ndarray,
    size: int = DEFAULT_SIZE,
    *,
    framing: Framing = LIVEPORTRAIT_SOURCE,
    face_index: int | None = None,
    analyzer: FaceAnalyzer | None = None,
    what: str = "the source image",
) -> PortraitCrop:
    """The portrait crop of a photo's face (the largest, or the ``face_index``-th from the left).

    The face is searched thoroughly (every scan of the analyzer); none gives ``NoFaceError``.
    """
    analyzer = analyzer or get_analyzer()
    box = select_face(analyzer.detect(image, thorough=True), face_index, what)
    points = analyzer.landmarks(image, box)
    window = window_from_landmarks(points, framing)
    return PortraitCrop(
        image=warp_crop(image, window, size),
        window=window,
        matrix=window.matrix(size),
        inverse=window.inverse(size),
        landmarks=points,
        found_by=box.detector,
    )


def track_windows(
    frames: Iterable[np.ndarray],
    *,
    framing: Framing = LIVEPORTRAIT_DRIVING,
    analyzer: FaceAnalyzer | None = None,
    every: int = 5,
    smooth: float = 12.0,
    face_index: int | None = None,
    what: str = "the driving video",
) -> np.ndarray:
    """``(N, 4)`` crop windows (``CropWindow.to_array``), one per frame, smoothed in time.

    One pass over ``frames``, keeping four numbers per frame. The face is looked for every
    ``every`` frames and followed by overlap; windows between are interpolated, and all are
    Gaussian-smoothed over ``smooth`` frames (sigma), so the crop glides with the head: jitter
    of the landmarks does not reach the engine as motion, while the head's turns and
    expressions (which the crop does not follow) do. Windows may reach beyond the frame.
    """

    def frame_window(points: np.ndarray) -> np.ndarray:
        return window_from_landmarks(points, framing).to_array()

    return track_boxes(
        frames,
        analyzer=analyzer,
        every=every,
        smooth=smooth,
        face_index=face_index,
        what=what,
        frame_box=frame_window,
        inside=False,
    )


def crop_with_windows(frames: Iterable[np.ndarray], windows: np.ndarray, size: int) -> Iterator[np.ndarray]:
    """Each frame cut at its window (``track_windows``), ``size`` pixels square; streams."""
    for frame, values in zip(frames, windows, strict=False):
        yield warp_crop(frame, CropWindow.from_array(values), size)


# The paste-back mask, in crop coordinates u, v in [-1, 1] (the crop's edges): a rounded square
# (|u|^4 + |v|^4 = d^4) opaque out to d = INNER, fading to nothing at d = OUTER. At LivePortrait's
# framing the face spans about |u| < 0.45 and the chin sits near v = 0.7, so the whole head,
# hair and neck are opaque and the seam runs through the background and shoulders.
MASK_INNER = 0.74
MASK_OUTER = 0.96
_MASK_POWER = 4


def mask_weight(
    u: np.ndarray, v: np.ndarray, inner: float = MASK_INNER, outer: float = MASK_OUTER
) -> np.ndarray:
    """Paste-back weight at crop coordinates (``u``, ``v``), 1 inside to 0 outside, smoothstep between."""
    d = (np.abs(u) ** _MASK_POWER + np.abs(v) ** _MASK_POWER) ** (1 / _MASK_POWER)
    r = np.clip((outer - d) / (outer - inner), 0.0, 1.0)
    return (r * r * (3 - 2 * r)).astype(np.float32)


def crop_mask(size: int, inner: float = MASK_INNER, outer: float = MASK_OUTER) -> np.ndarray:
    """``(size, size)`` float32 paste-back weights on a crop's pixels."""
    t = (np.arange(size) - (size - 1) / 2) / (size / 2)
    return mask_weight(t[None, :], t[:, None], inner, outer)


class PasteBack:
    """Puts square crops animated from ``window`` of ``image`` back into ``image``.

    The mask and the region it covers are computed once (the window is the source's, fixed for
    the whole video); each frame then costs one bicubic warp of the crop into that region and a
    blend there. Works for a crop of any size: the warp from each size is found on first use.
    """

    def __init__(
        self, image: np.ndarray, window: CropWindow, *, inner: float = MASK_INNER, outer: float = MASK_OUTER
    ) -> None:
        if not 0 < inner < outer <= 1:
            raise ValueError(f"mask radii must satisfy 0 < inner < outer <= 1, got {inner}, {outer}")
        self.image = np.ascontiguousarray(image)
        self.window = window
        h, w = image.shape[:2]
        # Where the mask is not zero: the window's square shrunk to ``outer``, clipped to the picture.
        shrunk = CropWindow(window.cx, window.cy, window.side * outer, window.angle)
        x0, y0, x1, y1 = _footprint(shrunk.inverse(2), 2, margin=1.0)
        self.box = (max(0, x0), max(0, y0), min(w, x1), min(h, y1))
        x0, y0, x1, y1 = self.box
        if x1 <= x0 or y1 <= y0:
            self.mask = np.zeros((0, 0, 1), dtype=np.float32)
        else:
            # Region pixels in crop coordinates: u, v = 2 / side * (axes @ (p - centre)).
            to_unit = window.matrix(2)  # a 2-pixel crop: indices -0.5 ... 1.5 are u + 0.5
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
            u = to_unit[0, 0] * xs + to_unit[0, 1] * ys + to_unit[0, 2] - 0.5
            v = to_unit[1, 0] * xs + to_unit[1, 1] * ys + to_unit[1, 2] - 0.5
            self.mask = mask_weight(u, v, inner, outer)[..., None]
        self._warps: dict[int, np.ndarray] = {}

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames this produces."""
        return self.image.shape[0], self.image.shape[1]

    def _warp(self, size: int) -> np.ndarray:
        """Region index -> crop index for a ``size`` crop."""
        if size not in self._warps:
            x0, y0 = self.box[:2]
            m = self.window.matrix(size).copy()  # picture index -> crop index
            m[:, 2] += m[:, :2] @ np.array([x0, y0])
            self._warps[size] = m
        return self._warps[size]

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """The picture with ``crop`` (``(S, S, 3)`` uint8, an animated crop of the window) pasted in."""
        if crop.ndim != 3 or crop.shape[0] != crop.shape[1] or crop.shape[2] != 3:
            raise ValueError(f"expected a square (S, S, 3) crop, got {crop.shape}")
        out = self.image.copy()
        x0, y0, x1, y1 = self.box
        if self.mask.size == 0:
            return out
        warped = _affine(crop, self._warp(crop.shape[0]), (x1 - x0, y1 - y0))
        below = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = _to_uint8(below + self.mask * (warped - below))
        return out

    def frames(self, crops: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` crops -> ``(N, H, W, 3)`` pictures."""
        if not len(crops):
            return np.empty((0, *self.image.shape), np.uint8)
        return np.stack([self(c) for c in crops])
