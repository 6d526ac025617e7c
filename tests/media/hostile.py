"""Hostile inputs built on the fly: videos whose headers lie about their length, picture bombs.

Shared by the media and service tests (import as ``tests.media.hostile``); nothing is committed.
"""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

_SEGMENT_DURATION = b"\x44\x89\x88"  # Matroska Info/Duration element: ID 0x4489, an 8-byte float


def _write_webm(path: Path, frames: int, fps: int, options: dict[str, str] | None = None) -> Path:
    with av.open(str(path), "w", format="webm", options=options or {}) as container:
        stream = container.add_stream("libvpx-vp9", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(frames):
            pixels = np.full((48, 64, 3), (index * 7) % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _clock(seconds: float) -> bytes:
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{rest:012.9f}".encode()


def write_lying_webm(path: Path, seconds: int, declared: int, fps: int = 10) -> Path:
    """A WebM of ``seconds`` seconds whose header says it lasts ``declared`` seconds.

    FFmpeg writes the length twice: the segment's ``Duration`` (a float in milliseconds) and the
    track's ``DURATION`` tag (a clock string). Both are rewritten in place, as anyone with a hex
    editor could, so every length a demuxer reports is the declared one.
    """
    _write_webm(path, seconds * fps, fps)
    data = bytearray(path.read_bytes())
    where = data.find(_SEGMENT_DURATION)
    assert where > 0, "no segment duration to rewrite"
    real = struct.unpack(">d", data[where + 3 : where + 11])[0]
    assert real == seconds * 1000.0, real
    data[where + 3 : where + 11] = struct.pack(">d", declared * 1000.0)
    tag = _clock(seconds)
    assert data.count(tag) == 1, "no DURATION tag to rewrite"
    path.write_bytes(bytes(data).replace(tag, _clock(declared)))
    with av.open(str(path)) as container:  # the lie is what a reader of the header now sees
        assert container.duration == declared * 1_000_000
        assert container.streams.video[0].metadata["DURATION"] == _clock(declared).decode()
    return path


def write_live_webm(path: Path, seconds: int, fps: int = 10) -> Path:
    """A WebM written as a live stream: no duration anywhere, as browsers' recorders produce."""
    _write_webm(path, seconds * fps, fps, options={"live": "1"})
    with av.open(str(path)) as container:
        assert container.duration is None and not container.streams.video[0].metadata.get("DURATION")
    return path


def write_png_bomb(path: Path, width: int, height: int) -> Path:
    """A real, valid black RGB PNG of ``width`` x ``height``: tiny on disk, huge once decoded.

    Compressed row by row, so making it costs little memory however large it claims to be.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    squeeze = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)  # filter byte, then black pixels
    pixels = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path
