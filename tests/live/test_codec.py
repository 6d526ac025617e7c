"""Frames off the network: decoded by content, within bounds, refused when damaged."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from animatica.live.codec import CodecError, decode_frame, encode_frame


def picture(h: int = 48, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).astype(np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` with a valid IHDR and a tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_encode_then_decode(fmt: str) -> None:
    image = picture()
    data = encode_frame(image, fmt, 90)
    assert data[:3] == b"\xff\xd8\xff" if fmt == "jpeg" else data[8:12] == b"WEBP"
    back = decode_frame(data, max_side=64)
    assert back.shape == image.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - image).mean() < 6


def test_png_and_other_modes_become_rgb() -> None:
    buffer = io.BytesIO()
    Image.fromarray(picture()[..., 0]).save(buffer, format="PNG")  # grayscale
    out = decode_frame(buffer.getvalue(), max_side=100)
    assert out.shape == (48, 64, 3)


def test_format_is_told_by_content_not_by_anything_declared() -> None:
    buffer = io.BytesIO()
    Image.fromarray(picture()).save(buffer, format="GIF")
    with pytest.raises(CodecError, match="JPEG, PNG or WebP"):
        decode_frame(buffer.getvalue(), max_side=100)
    with pytest.raises(CodecError, match="JPEG, PNG or WebP"):
        decode_frame(b"", max_side=100)


def test_declared_dimensions_are_refused_before_decoding() -> None:
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200
    with pytest.raises(CodecError, match="at most 640 pixels on a side"):
        decode_frame(bomb, max_side=640)
    with pytest.raises(CodecError, match=r"5000x3000 pixels is refused.*at most 640"):
        decode_frame(png_header_only(5000, 3000), max_side=640)
    with pytest.raises(CodecError, match="at most 32"):
        decode_frame(encode_frame(picture(), "jpeg"), max_side=32)


@pytest.mark.parametrize("fmt", ["jpeg", "webp"])
def test_truncated_frames_are_refused(fmt: str) -> None:
    data = encode_frame(picture(), fmt, 90)
    with pytest.raises(CodecError, match="damaged or incomplete"):
        decode_frame(data[: len(data) // 2], max_side=100)


def test_garbage_after_a_jpeg_magic_is_refused() -> None:
    with pytest.raises(CodecError, match="JPEG frame is damaged"):
        decode_frame(b"\xff\xd8\xff" + bytes(range(256)) * 4, max_side=100)


def test_encode_refuses_bad_arguments() -> None:
    with pytest.raises(CodecError, match="jpeg or webp"):
        encode_frame(picture(), "png")  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="quality"):
        encode_frame(picture(), "jpeg", 0)
    with pytest.raises(CodecError, match="uint8"):
        encode_frame(picture().astype(np.float32), "jpeg")
