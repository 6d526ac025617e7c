"""Feathered paste-back of an animated region into the untouched full picture."""

import numpy as np


def feather_mask(
    size: tuple[int, int], width: float, open_sides: tuple[bool, bool, bool, bool]
) -> np.ndarray:
    """``(h, w, 1)`` weights rising smoothly from 0 at the region's edges to 1 inside.

    ``open_sides`` (top, bottom, left, right) says which edges lie inside the picture and so
    need a soft transition; an edge on the picture's own border gets none. The warp already
    leaves the region's border still, so the ramp only hides sub-pixel resampling differences
    and anything painted close to the edge.
    """
    h, w = size
    width = max(float(width), 1.0)

    def ramp(n: int, near: bool, far: bool) -> np.ndarray:
        d = np.arange(n, dtype=np.float32) + 0.5
        r = np.ones(n, dtype=np.float32)
        if near:
            r = np.minimum(r, d / width)
        if far:
            r = np.minimum(r, d[::-1] / width)
        r = np.clip(r, 0, 1)
        return r * r * (3 - 2 * r)  # smoothstep

    top, bottom, left, right = open_sides
    return (ramp(h, top, bottom)[:, None] * ramp(w, left, right)[None, :])[..., None]
