"""A visible mark in a corner of every frame: a small, semi-transparent label such as "AI-generated".

The mark depends only on the frame's size and the text, never on the frame's neighbours, so a
video cut into segments and stamped frame by frame on different workers carries exactly the mark
that one process would have drawn. Its shape (text pixels and a darkened plate behind them) is
drawn once per frame size and reused; stamping a frame only blends that small patch in, which
costs a fraction of a millisecond at 1080p.
"""

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_SHARE = 0.028  # text height as a share of the frame's shorter side
_MIN_TEXT = 7  # px: smaller than this no font is legible
_PLATE_ALPHA = 0.45  # how dark the plate behind the text is
_TEXT_ALPHA = 0.8  # how opaque the text is


@dataclass(frozen=True)
class _Mark:
    top: int
    left: int
    plate: np.ndarray  # (h, w, 1) float32 opacity of the dark plate
    text: np.ndarray  # (h, w, 1) float32 opacity of the white text


@lru_cache(maxsize=8)
def _mark(height: int, width: int, text: str) -> _Mark | None:
    """The mark's patch for frames of this size (bottom-right corner); None when it cannot fit."""
    target = max(_MIN_TEXT, round(min(height, width) * _TEXT_SHARE))
    (_, unit_height), _ = cv2.getTextSize(text, _FONT, 1.0, 1)
    scale = target / max(unit_height, 1)
    thickness = max(1, round(target / 12))
    (text_w, text_h), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(2, target // 3)
    plate_h, plate_w = text_h + baseline + 2 * pad, text_w + 2 * pad
    margin = max(2, target // 2)
    if plate_w + 2 * margin > width or plate_h + 2 * margin > height:
        return None
    layer = np.zeros((plate_h, plate_w), np.uint8)
    cv2.putText(layer, text, (pad, pad + text_h), _FONT, scale, 255, thickness, cv2.LINE_AA)
    plate = np.full((plate_h, plate_w, 1), _PLATE_ALPHA, np.float32)
    letters = (layer.astype(np.float32) * (_TEXT_ALPHA / 255.0))[..., None]
    return _Mark(height - margin - plate_h, width - margin - plate_w, plate, letters)


def stamp(frames: np.ndarray, text: str) -> np.ndarray:
    """``frames`` (``(N, H, W, 3)`` or ``(H, W, 3)`` uint8) with ``text`` in the bottom-right corner.

    Changed in place when the array is writable, else a copy is stamped. Frames too small for a
    legible label are returned unchanged.
    """
    if not frames.flags.writeable:
        frames = frames.copy()
    height, width = frames.shape[-3:-1]
    mark = _mark(int(height), int(width), text)
    if mark is None:
        return frames
    h, w = mark.plate.shape[:2]
    region = frames[..., mark.top : mark.top + h, mark.left : mark.left + w, :]
    patch = region.astype(np.float32)
    patch *= 1.0 - mark.plate  # darken behind the text so it reads on a light background too
    patch += mark.text * (255.0 - patch)
    region[...] = np.clip(patch + 0.5, 0, 255).astype(np.uint8)
    return frames
