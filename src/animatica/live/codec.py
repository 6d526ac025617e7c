"""Camera frames in and animated frames out of a live session, as compressed images.

Pillow does both directions (built on libjpeg-turbo and libwebp here). At 256x256 a JPEG
encodes in about 0.3 ms and decodes in about 0.6 ms on one core, a small part of a frame's
budget next to the engine; WebP saves a fifth of the bytes but costs about 3 ms to encode even
at libwebp's fastest method, which is why JPEG is the default.

Frames come from the network, so nothing is trusted: the format is told from the first bytes
(JPEG, PNG or WebP, never by a name or a declared type), the sides a header declares are
checked before a single pixel is decoded (a PNG can declare 100 000 x 100 000 pixels in a few
hundred bytes), and data that ends early is an error rather than a half-grey picture.
"""

from __future__ import annotations

import io
import warnings
from typing import Literal

import numpy as np
from PIL import Image

from animatica.errors import AnimaticaError
from animatica.media.image import to_rgb
from animatica.media.probe import DECODE_ERRORS

FrameFormat = Literal["jpeg", "webp"]
FORMATS: tuple[FrameFormat, ...] = ("jpeg", "webp")

_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


class CodecError(AnimaticaError):
    """A frame that cannot be decoded or encoded."""


def sniff(data: bytes) -> str | None:
    """``"jpeg"``, ``"png"`` or ``"webp"`` from the magic bytes, else ``None``."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def decode_frame(data: bytes, max_side: int) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB frame from JPEG, PNG or WebP bytes whose sides are at most ``max_side``."""
    kind = sniff(bytes(data[:12]))
    if kind is None:
        raise CodecError("a frame must be a JPEG, PNG or WebP image; these bytes are none of them")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own bound is stricter
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]])
        with image:
            width, height = image.size
            if max(width, height) > max_side or min(width, height) < 1:
                raise CodecError(
                    f"a frame of {width}x{height} pixels is refused: frames may be at most "
                    f"{max_side} pixels on a side"
                )
            image.load()  # a truncated frame raises here (Pillow does not fill in missing data)
            return np.asarray(image) if image.mode == "RGB" else to_rgb(image)
    except CodecError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own bound, far above ours, hit on opening
        raise CodecError(
            f"a {kind.upper()} frame declares billions of pixels: "
            f"frames may be at most {max_side} pixels on a side"
        ) from exc
    except DECODE_ERRORS as exc:
        raise CodecError(f"a {kind.upper()} frame is damaged or incomplete ({exc})") from exc


def encode_frame(image: np.ndarray, fmt: FrameFormat = "jpeg", quality: int = 80) -> bytes:
    """``image`` (``(H, W, 3)`` uint8) as JPEG or WebP bytes at ``quality`` (1-100)."""
    if fmt not in FORMATS:
        raise CodecError(f"frames are sent as {' or '.join(FORMATS)}, not {fmt!r}")
    if not 1 <= quality <= 100:
        raise CodecError(f"quality must be between 1 and 100, got {quality}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise CodecError(f"expected an (H, W, 3) uint8 frame, got {image.shape} {image.dtype}")
    buffer = io.BytesIO()
    picture = Image.fromarray(np.ascontiguousarray(image))
    if fmt == "jpeg":
        # 4:2:0 like a camera's own JPEG: a third less data than 4:4:4 for no visible loss at this size.
        picture.save(buffer, format="JPEG", quality=quality, subsampling=2)
    else:
        # method 0 is libwebp's fastest: the higher methods buy a few percent of size for 3-5x the time.
        picture.save(buffer, format="WEBP", quality=quality, method=0)
    return buffer.getvalue()
