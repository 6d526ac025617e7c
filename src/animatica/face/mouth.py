"""Paint the inside of a mouth that opens wider than it is in the source photo.

A warp can only stretch the pixels it has; when a closed mouth opens, the thin line between the
lips would be smeared into a pink band. Instead the opening (the inner-lip polygon) is painted:
a shadowed cavity in a darkened lip colour, with a band of upper teeth in a shade matched to the
photo's brightness, anti-aliased at the lip line and faded in with how far the mouth opened.
"""

import numpy as np
from skimage.draw import polygon as fill_polygon

from animatica.face import geometry as g

_SUPERSAMPLE = 3
_TEETH = np.array([232.0, 226.0, 214.0])


def mouth_colours(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cavity, teeth) RGB colours suited to a photo.

    The cavity is the lip colour in deep shadow. Teeth take the colour of the photo's own mouth
    interior when it shows one (its brightest pixels there), else a neutral ivory dimmed to the
    skin's brightness so they do not glow in a dark photo.
    """
    h, w = image.shape[:2]

    def sample(idx: np.ndarray) -> np.ndarray:
        pts = np.clip(np.round(landmarks[idx]).astype(int), 0, [w - 1, h - 1])
        return image[pts[:, 1], pts[:, 0]].astype(np.float64)

    lips = sample(g.OUTER_LIPS).mean(axis=0)
    skin = sample(g.NOSE).mean(axis=0)
    teeth = _TEETH * np.clip(skin.mean() / 170.0, 0.35, 1.0) * 0.92
    pairs = g.MOUTH_PAIRS
    if np.linalg.norm(landmarks[pairs[:, 1]] - landmarks[pairs[:, 0]], axis=1).mean() > 3:
        inside = (landmarks[pairs[:, 0]] * 2 + landmarks[pairs[:, 1]]) / 3
        pts = np.clip(np.round(inside).astype(int), 0, [w - 1, h - 1])
        own = image[pts[:, 1], pts[:, 0]].astype(np.float64)
        brightest = own[own.sum(axis=1).argmax()]
        if brightest.mean() > lips.mean():
            teeth = 0.5 * teeth + 0.5 * brightest
    return lips * 0.3, teeth


def paint_mouth(
    region: np.ndarray,
    inner: np.ndarray,
    cavity: np.ndarray,
    teeth: np.ndarray,
    teeth_height: float,
    opacity: float,
) -> None:
    """Paint the opening bounded by ``inner`` (8 inner-lip points 60..67, region pixels) in place.

    ``region`` is float ``(h, w, 3)``. The upper lip line runs 60→64 through 61..63, the lower
    one 64→60 through 65..67. Upper teeth show ``teeth_height`` pixels below the upper lip (at
    most 40 % of the opening), the rest is shadow.
    """
    if opacity <= 0:
        return
    h, w = region.shape[:2]
    x0, y0 = np.floor(inner.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(inner.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    s = _SUPERSAMPLE
    local = (inner - [x0, y0] + 0.5) * s - 0.5
    rr, cc = fill_polygon(local[:, 1], local[:, 0], shape=((y1 - y0) * s, (x1 - x0) * s))
    hi = np.zeros(((y1 - y0) * s, (x1 - x0) * s), dtype=np.float32)
    hi[rr, cc] = 1.0
    coverage = hi.reshape(y1 - y0, s, x1 - x0, s).mean(axis=(1, 3))
    if not coverage.any():
        return
    # Relative depth t in [0, 1] from the upper to the lower inner lip, per column.
    xs = np.arange(x0, x1, dtype=np.float64)
    upper = inner[[0, 1, 2, 3, 4]]
    lower = inner[[0, 7, 6, 5, 4]]
    up_y = np.interp(xs, *_sorted(upper))
    low_y = np.interp(xs, *_sorted(lower))
    gap = np.maximum(low_y - up_y, 1e-3)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    t = np.clip((ys - up_y[None]) / gap[None], 0, 1)
    # Teeth show under the upper lip across the middle of the mouth, fading at the corners.
    span = max(float(inner[4, 0] - inner[0, 0]), 1e-3)
    across = np.clip((xs - inner[0, 0]) / span, 0, 1)
    centre = np.clip(1 - np.abs(across - 0.5) / 0.42, 0, 1) ** 0.5
    teeth_depth = np.minimum(teeth_height, 0.4 * gap)[None] * centre[None]
    below = ys - up_y[None]
    teeth_mask = np.clip((teeth_depth - below) / 1.5 + 0.5, 0, 1)
    shade = 0.55 + 0.45 * np.abs(2 * t - 1.1)  # darkest a little below the middle
    colour = cavity[None, None] * shade[..., None]
    colour = colour + teeth_mask[..., None] * (
        teeth[None, None] * (0.75 + 0.25 * (1 - t))[..., None] - colour
    )
    alpha = (coverage * opacity)[..., None]
    patch = region[y0:y1, x0:x1]
    patch += alpha * (colour - patch)


def _sorted(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0], kind="stable")
    return points[order, 0], points[order, 1]
