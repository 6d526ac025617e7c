"""Put the face of one photo onto a face in a video frame, with no learned model.

Per target face (its 68 landmarks, already smoothed over time by the caller):
 1. Alignment. A similarity maps the photo onto the target on the points that move with the
    skull (``geometry.RIGID``); what it leaves (face shape, expression, a slight turn) is taken up
    by a piecewise-affine warp over a triangulation of the photo's landmarks (``warp.MeshWarp``),
    so every photo landmark lands on its target landmark. A ring of fixed points around the face
    keeps the warp smooth beyond the jaw. Both maps are composed into one sampling map, so the
    photo is resampled once.
 2. Masks, from the target's landmarks: the face (hull of the landmarks), the mouth's opening and
    the eyes. Inside the mouth and the eyes the target's own pixels stay: teeth, tongue, gaze and
    blinks are expression, which a warp of a still photo cannot show. Polygons are drawn with
    sub-pixel, anti-aliased edges, so a mask moves smoothly with its landmarks instead of snapping
    from pixel to pixel.
 3. Colour and light: the warped photo takes the target's skin statistics in Lab and its light
    direction (``face.colour``).
 4. Blending. Gradient-domain (Poisson) cloning with OpenCV: inside the face the result has the
    photo's gradients, on the face's edge the target's values, which dissolves whatever colour
    difference is left. A Poisson solution equals the source plus a smooth membrane that corrects
    the difference along the edge; the membrane is computed on a copy reduced to at most
    ``poisson_side`` pixels and enlarged, which costs a fraction of the full-size solve and changes
    nothing visible (the membrane has no detail to lose). A feathered edge then fades the result
    into the untouched frame. ``feather`` skips the Poisson step (alpha blend only).

Everything runs in a region of interest around the target face, at the frame's resolution.
"""

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from animatica.face import geometry as g
from animatica.face.analyzer import FaceAnalyzer
from animatica.face.colour import transfer_colour
from animatica.face.tracks import single_face
from animatica.face.warp import MeshWarp

Blend = Literal["poisson", "feather"]
BLENDS: tuple[str, ...] = ("poisson", "feather")

_RING = 1.6  # fixed ring around the photo face, as a multiple of the outline's distance from its centre
_RING_POINTS = 16
_CROP_MARGIN = 0.35  # photo crop beyond the ring, in face sizes
_ROI_MARGIN = 0.25  # frame region beyond the target face's landmarks, in face sizes
_SUBPIXEL = 4  # bits of sub-pixel precision when drawing mask polygons
_SCALE = 1 << _SUBPIXEL


@dataclass(frozen=True)
class SwapOptions:
    keep_mouth: bool = True  # the target's mouth opening stays (teeth, tongue)
    keep_eyes: bool = True  # the target's eyes stay (gaze, blinks)
    blend: Blend = "poisson"
    lighting: bool = True  # carry the target's light direction over, not only its mean colour
    poisson_side: int = 96


@dataclass
class SwapSource:
    """The photo's face, prepared once for any number of frames."""

    crop: np.ndarray  # (H, W, 3) uint8, the photo around its face (at most ``max_side`` a side)
    points: np.ndarray  # (68, 2) its landmarks, crop pixels, no two on one spot
    ring: np.ndarray  # (R, 2) fixed control points around the face, crop pixels
    warp: MeshWarp  # built on the working grid (``grid`` pixels per crop pixel)
    grid: tuple[float, float]  # (x, y) working-grid pixels per crop pixel

    @property
    def controls(self) -> np.ndarray:
        return np.vstack([self.points, self.ring])


def prepare_source(
    photo: np.ndarray,
    analyzer: FaceAnalyzer,
    *,
    what: str = "the face photo",
    max_side: int = 512,
    work_side: int = 160,
) -> SwapSource:
    """The photo's one face cropped, landmarked and triangulated; ``NoFaceError`` when it has none."""
    box = single_face(photo, analyzer, what)
    points = analyzer.landmarks(photo, box).astype(np.float64)
    size = g.face_size(points)
    centre = points[g.JAW].mean(axis=0) * 0.5 + points.mean(axis=0) * 0.5
    outline = np.vstack([points[g.JAW], points[g.BROWS][::-1]])
    radius = float(np.linalg.norm(outline - centre, axis=1).max()) * _RING + _CROP_MARGIN * size
    h, w = photo.shape[:2]
    x0, y0 = max(0, int(np.floor(centre[0] - radius))), max(0, int(np.floor(centre[1] - radius)))
    x1, y1 = min(w, int(np.ceil(centre[0] + radius)) + 1), min(h, int(np.ceil(centre[1] + radius)) + 1)
    crop = photo[y0:y1, x0:x1]
    points = points - [x0, y0]
    factor = min(1.0, max_side / max(crop.shape[:2]))
    if factor < 1.0:
        new = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        fx, fy = new[0] / crop.shape[1], new[1] / crop.shape[0]
        crop = cv2.resize(crop, new, interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * [fx, fy] - 0.5
    return source_from_parts(np.ascontiguousarray(crop), g.separate_lips(points), work_side)


def source_from_parts(crop: np.ndarray, points: np.ndarray, work_side: int) -> SwapSource:
    """A `SwapSource` from its crop and landmarks (what a saved state keeps): the rest is derived."""
    ch, cw = crop.shape[:2]
    outline = np.vstack([points[g.JAW], points[g.BROWS][::-1]])
    centre = outline.mean(axis=0)
    angles = np.linspace(0, 2 * np.pi, _RING_POINTS, endpoint=False)
    reach = float(np.linalg.norm(outline - centre, axis=1).max()) * _RING
    ring = centre + reach * np.c_[np.cos(angles), np.sin(angles)]
    factor = min(1.0, work_side / max(ch, cw))
    gh, gw = max(2, round(ch * factor)), max(2, round(cw * factor))
    grid = (gw / cw, gh / ch)
    warp = MeshWarp(_to_grid(np.vstack([points, ring]), grid), (gh, gw), work_side=max(gh, gw))
    return SwapSource(crop=crop, points=points, ring=ring, warp=warp, grid=grid)


def _to_grid(points: np.ndarray, grid: tuple[float, float]) -> np.ndarray:
    """Crop pixels to working-grid pixels (pixel centres map to pixel centres)."""
    return (points + 0.5) * np.asarray(grid) - 0.5


def alignment(source: SwapSource, target: np.ndarray) -> np.ndarray:
    """The similarity (``(2, 3)``) from the photo's crop to the frame that best fits the skull points."""
    return g.fit_similarity(source.points[g.RIGID], target[g.RIGID])


def sampling_map(source: SwapSource, target: np.ndarray, region: tuple[int, int, int, int]) -> np.ndarray:
    """``(h, w, 2)`` float32: for each pixel of the frame region ``(y0, y1, x0, x1)``, where in the
    photo's crop to read, so that the photo's landmarks land on ``target`` (frame pixels)."""
    y0, y1, x0, x1 = region
    to_frame = alignment(source, target)
    to_crop = g.invert(to_frame)
    aimed = g.separate_lips(g.apply(to_crop, target))  # target landmarks in crop pixels
    controls = _to_grid(np.vstack([aimed, source.ring]), source.grid)
    grid = source.warp.sampling_grid(controls)[0].numpy()  # (gh, gw, 2) in -1..1 of the crop
    ch, cw = source.crop.shape[:2]
    read = (grid + 1.0) * (0.5 * np.array([cw, ch], dtype=np.float32)) - 0.5  # crop pixels
    # Region pixel (u, v) -> frame (u + x0, v + y0) -> crop -> working grid: one affine map, along
    # which the grid of read positions is itself resampled (it is smooth: nothing is lost).
    sx, sy = source.grid
    lin = np.diag([sx, sy]) @ to_crop[:, :2]
    shift = (
        np.diag([sx, sy]) @ (to_crop[:, :2] @ np.array([x0, y0]) + to_crop[:, 2])
        + 0.5 * np.array([sx, sy])
        - 0.5
    )
    region_to_grid = np.c_[lin, shift].astype(np.float64)
    return cv2.warpAffine(
        np.ascontiguousarray(read),
        region_to_grid,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def face_region(target: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` of the frame around the target face, or None when too little is in view."""
    h, w = shape
    size = g.face_size(target)
    lo = target.min(axis=0) - _ROI_MARGIN * size
    hi = target.max(axis=0) + _ROI_MARGIN * size
    x0, y0 = max(0, int(np.floor(lo[0]))), max(0, int(np.floor(lo[1])))
    x1, y1 = min(w, int(np.ceil(hi[0])) + 1), min(h, int(np.ceil(hi[1])) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16 or size < 8:
        return None
    return y0, y1, x0, x1


def _fill(mask: np.ndarray, polygon: np.ndarray) -> None:
    """Fill a polygon into a float32 mask, anti-aliased and placed to a sixteenth of a pixel."""
    pts = np.round(polygon * _SCALE).astype(np.int32).reshape(-1, 1, 2)
    layer = np.zeros(mask.shape, np.uint8)
    cv2.fillPoly(layer, [pts], 255, lineType=cv2.LINE_AA, shift=_SUBPIXEL)
    np.maximum(mask, layer.astype(np.float32) * (1.0 / 255.0), out=mask)


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), max(sigma, 0.5), borderType=cv2.BORDER_CONSTANT)


@dataclass
class FaceMasks:
    """Masks of one target face over its frame region, float32 0..1."""

    face: np.ndarray  # the whole face (landmark hull), hard-edged but anti-aliased
    soft: np.ndarray  # the face shrunk and feathered: how much of the swap shows
    keep: np.ndarray  # where the target's own pixels stay (mouth opening, eyes)


def face_masks(local: np.ndarray, shape: tuple[int, int], options: SwapOptions) -> FaceMasks:
    """Masks for the target landmarks ``local`` (region pixels) over a region of ``shape``."""
    size = g.face_size(local)
    face = np.zeros(shape, np.float32)
    _fill(face, cv2.convexHull(local.astype(np.float32)).reshape(-1, 2))
    # The feather stays inside the hull: at its edge the Poisson result meets the frame exactly.
    radius = max(1, round(0.05 * size))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    soft = _blur(cv2.erode(face, kernel), 0.035 * size)
    keep = np.zeros(shape, np.float32)
    if options.keep_mouth:
        _fill(keep, local[g.INNER_LIPS])
    if options.keep_eyes:
        for eye in (g.RIGHT_EYE, g.LEFT_EYE):
            centre = local[eye].mean(axis=0)
            _fill(keep, centre + 1.15 * (local[eye] - centre))  # lashes and the lid line too
    if options.keep_mouth or options.keep_eyes:
        keep = _blur(keep, 0.012 * size)
    return FaceMasks(face=face, soft=soft, keep=keep)


def swap_face(frame: np.ndarray, target: np.ndarray, source: SwapSource, options: SwapOptions) -> bool:
    """Put ``source``'s face onto the face with landmarks ``target`` in ``frame`` (uint8 RGB, changed
    in place). False when too little of that face is in the frame to swap."""
    region = face_region(target, frame.shape[:2])
    if region is None:
        return False
    y0, y1, x0, x1 = region
    local = target - [x0, y0]
    original = frame[y0:y1, x0:x1].astype(np.float32)
    read = sampling_map(source, target, region)
    warped = cv2.remap(
        source.crop, read[..., 0], read[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    masks = face_masks(local, original.shape[:2], options)
    skin = masks.soft * (1.0 - masks.keep)
    if float(skin.sum()) < 16.0:
        return False
    size = g.face_size(local)
    coloured = transfer_colour(
        warped, original, skin, lighting_sigma=0.25 * size if options.lighting else None
    )
    keep = masks.keep[..., None]
    composite = coloured + keep * (original - coloured)
    if options.blend == "poisson":
        # The kept mouth and eyes stay exactly the target's: the correction is for the photo's skin.
        correction = poisson_correction(composite, original, masks.face, options.poisson_side)
        composite = composite + (1.0 - keep) * correction
    soft = masks.soft[..., None]
    blended = original + soft * (composite - original)
    frame[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return True


def poisson_correction(source: np.ndarray, target: np.ndarray, mask: np.ndarray, side: int) -> np.ndarray:
    """The smooth field that seamless (Poisson) cloning adds to ``source`` inside ``mask`` so that
    it meets ``target`` on the mask's edge; computed at most ``side`` pixels a side (float32)."""
    h, w = mask.shape
    factor = min(1.0, side / max(h, w))
    size = (max(8, round(w * factor)), max(8, round(h * factor)))
    small_src = cv2.resize(np.clip(source, 0, 255), size, interpolation=cv2.INTER_AREA)
    small_dst = cv2.resize(target, size, interpolation=cv2.INTER_AREA)
    small_mask = (cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0.5).astype(np.uint8) * 255
    # OpenCV needs the mask off the picture's border; the feather never reaches it anyway.
    small_mask[:1], small_mask[-1:], small_mask[:, :1], small_mask[:, -1:] = 0, 0, 0, 0
    ys, xs = np.nonzero(small_mask)
    if len(xs) == 0:
        return np.zeros_like(source)
    bx, by = int(xs.min()), int(ys.min())
    bw, bh = int(xs.max()) - bx + 1, int(ys.max()) - by + 1
    src8 = (small_src + 0.5).astype(np.uint8)
    cloned = cv2.seamlessClone(
        src8, (small_dst + 0.5).astype(np.uint8), small_mask, (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE
    )
    # Outside the mask the clone is the target itself, so the field runs on continuously past the
    # edge (where the feather has faded the swap out anyway).
    correction = cloned.astype(np.float32) - src8.astype(np.float32)
    if factor < 1.0:
        correction = cv2.resize(correction, (w, h), interpolation=cv2.INTER_LINEAR)
    return correction
