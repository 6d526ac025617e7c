"""Turning an accepted picture into the upright 8-bit RGB pixels that everything downstream expects.

The command line (``read_image``) and the service's upload check both call ``decode_picture``,
so a picture is seen the same way wherever it comes from: one that animates from the command
line animates as a job, with the same pixels. The choices it makes:

* EXIF orientation is applied, so phone photos stand upright.
* 16-bit (and 32-bit integer or float) grayscale is scaled from its full range down to 8 bits;
  a plain conversion would clip everything above 255 to white.
* Transparency is composited over white: a cut-out portrait on white looks like a photo, while
  on black its soft edges would turn into a dark halo.
* Palette, grayscale, CMYK and every other mode become RGB.
* With ``max_side``, a larger picture is scaled down (aspect kept). A JPEG is then decoded at a
  reduced scale straight from its DCT coefficients where that still leaves at least the target
  size, so a 12-megapixel phone photo costs a quarter of its full decode.

Callers check the header size (``animatica.media.probe.upright_size``) before calling this,
since this is where the pixel data is decoded.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from animatica.errors import MediaError
from animatica.media.fit import fit_within
from animatica.media.probe import DECODE_ERRORS, orientation

_WHITE = (255, 255, 255, 255)
# EXIF orientation -> the transpose that makes the picture upright (1 needs none).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_DEEP_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def decode_picture(image: Image.Image, path: Path, max_side: int | None = None) -> np.ndarray:
    """Decode a picture opened with ``open_image`` into an upright ``(H, W, 3)`` uint8 RGB array.

    ``max_side`` bounds the longer side of the result (smaller pictures are never enlarged).
    Damaged or incomplete pixel data raises ``MediaError`` naming ``path``.
    """
    turn = _TRANSPOSE.get(orientation(image))  # from the header, before the pixels are read
    if max_side is not None and image.format in ("JPEG", "MPO"):
        width, height = image.size
        scale = max_side / max(width, height)
        if scale < 1:
            # Pillow picks the smallest DCT scale (1/2, 1/4, 1/8) that is still at least this size.
            image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
    try:
        image.load()
        pixels = to_rgb(image if turn is None else image.transpose(turn))
    except DECODE_ERRORS as exc:
        raise MediaError(
            f"{path} is a damaged or incomplete image ({exc}); export or download it again."
        ) from exc
    if max_side is not None:
        pixels = fit_within(pixels, max_side)
    return pixels


def to_rgb(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode as an ``(H, W, 3)`` uint8 RGB array (see the module notes)."""
    if image.mode in _DEEP_MODES:
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        image = Image.alpha_composite(background, rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)
