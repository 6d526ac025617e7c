"""Fitting frames of any size to the fixed size a model works at.

Resizing goes through Pillow: its Lanczos filter is antialiased (a 720p frame shrunk to 256
keeps fine detail without aliasing, which keypoint detectors are sensitive to). With
``reducing_gap`` it first box-averages by a whole factor and runs Lanczos only on the rest,
which keeps 720p→256 at about 200 frames per second on one core (a full Lanczos pass is about
three times slower for no visible gain at these sizes).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

FitMode = Literal["crop", "pad", "stretch"]
FIT_MODES: tuple[FitMode, ...] = ("crop", "pad", "stretch")

# Box-reduce by the largest whole factor that keeps the image at least the target size, then
# Lanczos the remaining (< 2x) step.
_REDUCING_GAP = 1.0


def fit_frame(frame: np.ndarray, size: tuple[int, int], mode: FitMode = "crop") -> np.ndarray:
    """Return ``frame`` (``(H, W, 3)`` uint8) at ``size`` = ``(height, width)``.

    ``crop`` (default) cuts the largest centred region with the target aspect ratio and scales
    it, so faces keep their proportions and the picture is filled; ``pad`` scales the whole
    frame to fit inside and fills the bars with black (letterbox); ``stretch`` scales each axis
    independently. A frame already at ``size`` is returned as is (not copied).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    target_h, target_w = size
    if target_h < 1 or target_w < 1:
        raise ValueError(f"target size must be positive, got {size}")
    if mode not in FIT_MODES:
        raise ValueError(f"fit mode must be one of {FIT_MODES}, got {mode!r}")
    height, width = frame.shape[:2]
    if (height, width) == (target_h, target_w):
        return frame
    if mode == "crop":
        left, top, right, bottom = _centre_box(width, height, target_w / target_h)
        region = np.ascontiguousarray(frame[top:bottom, left:right])
        return _resize(Image.fromarray(region), (target_w, target_h))
    image = Image.fromarray(frame)
    if mode == "stretch":
        return _resize(image, (target_w, target_h))
    return _letterbox(image, target_w, target_h)


def _centre_box(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred box with ``aspect`` = width/height, on whole pixels.

    The crop is cut before resizing (not passed to ``resize`` as a box) so that no pixel from
    outside it bleeds in through the filter's support; rounding changes the aspect by under
    a pixel.
    """
    if width / height > aspect:
        box_w = max(1, min(width, round(height * aspect)))
        left = (width - box_w) // 2
        return (left, 0, left + box_w, height)
    box_h = max(1, min(height, round(width / aspect)))
    top = (height - box_h) // 2
    return (0, top, width, top + box_h)


def _resize(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    resized = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
    return np.array(resized)  # a writable array the caller owns


def _letterbox(image: Image.Image, target_w: int, target_h: int) -> np.ndarray:
    scale = min(target_w / image.width, target_h / image.height)
    inner_w = min(target_w, max(1, round(image.width * scale)))
    inner_h = min(target_h, max(1, round(image.height * scale)))
    inner = _resize(image, (inner_w, inner_h))
    canvas = np.zeros((target_h, target_w, 3), dtype=np.uint8)
    top = (target_h - inner_h) // 2
    left = (target_w - inner_w) // 2
    canvas[top : top + inner_h, left : left + inner_w] = inner
    return canvas


def fit_within(frame: np.ndarray, max_side: int) -> np.ndarray:
    """``frame`` scaled down (aspect kept) so that its longer side is at most ``max_side``.

    A frame that already fits is returned as is; nothing is ever enlarged. Sides are rounded to
    whole pixels and never drop below one.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    height, width = frame.shape[:2]
    if max(height, width) <= max_side:
        return frame
    scale = max_side / max(height, width)
    size = (min(max_side, max(1, round(width * scale))), min(max_side, max(1, round(height * scale))))
    return _resize(Image.fromarray(frame), size)
