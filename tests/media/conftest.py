"""Real media made on the fly with PyAV and Pillow: nothing is committed, nothing is downloaded."""

from __future__ import annotations

import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import av.container
import numpy as np
import pytest


def frame_colour(index: int) -> tuple[int, int, int]:
    """A distinct, decodable-after-compression colour per frame index."""
    return (40 + (index * 37) % 180, 40 + (index * 71) % 180, 40 + (index * 13) % 180)


def coloured_frame(index: int, width: int, height: int) -> np.ndarray:
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = frame_colour(index)
    return frame


def tone(seconds: float, rate: int, channels: int, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    return np.repeat(wave[None, :], channels, axis=0)


def write_video(
    path: Path,
    frames: int = 30,
    width: int = 64,
    height: int = 48,
    rate: Fraction | int = 25,
    codec: str = "libx264",
    container_format: str | None = None,
    audio_seconds: float | None = None,
    audio_codec: str = "aac",
    audio_rate: int = 44100,
    faststart: bool = False,
    rotation: int = 0,
    audio_delay: float = 0.0,
) -> Path:
    """Encode ``frames`` flat-coloured frames (colour ``frame_colour(i)``) and optionally a tone."""
    rate = Fraction(rate)
    pix_fmt = {"gif": "rgb8", "mpeg4": "yuv420p", "libvpx-vp9": "yuv420p"}.get(codec, "yuv420p")
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=options) as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        audio = None
        if audio_seconds:
            audio = container.add_stream(audio_codec, rate=audio_rate)
            audio.layout = "stereo"
        for index in range(frames):
            image = coloured_frame(index, width, height)
            image[:4, :4] = 255  # a white marker in the top-left corner
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            frame.time_base = 1 / rate
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        if audio is not None and audio_seconds:
            _encode_tone(container, audio, audio_seconds, audio_rate, audio_delay)
    return path


def _encode_tone(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    rate: int,
    delay: float = 0.0,
) -> None:
    samples = tone(seconds, rate, 2)
    step = 1024
    offset = round(delay * rate)
    for start in range(0, samples.shape[1], step):
        piece = np.ascontiguousarray(samples[:, start : start + step])
        frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = offset + start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An M4A file with an AAC stream and no video (a "zero-frame video")."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        stream.layout = "stereo"
        _encode_tone(container, stream, seconds, 44100)
    return path


def png_with_header_size(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression-bomb lookalike).

    The pixel data is far too short for that size, so only a reader that checks the header
    before decoding reports the size; one that decodes first fails differently.
    """

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def top_level_boxes(path: Path) -> list[str]:
    """The ISO-BMFF top-level box types of an MP4, in file order."""
    boxes = []
    with path.open("rb") as handle:
        while header := handle.read(8):
            size, kind = struct.unpack(">I4s", header)
            boxes.append(kind.decode("latin-1"))
            if size == 1:
                size = struct.unpack(">Q", handle.read(8))[0]
                handle.seek(size - 16, 1)
            elif size == 0:
                break
            else:
                handle.seek(size - 8, 1)
    return boxes


class Kit:
    """The helpers above, handed to tests through the ``kit`` fixture."""

    frame_colour = staticmethod(frame_colour)
    coloured_frame = staticmethod(coloured_frame)
    tone = staticmethod(tone)
    write_video = staticmethod(write_video)
    write_audio_only = staticmethod(write_audio_only)
    png_with_header_size = staticmethod(png_with_header_size)
    top_level_boxes = staticmethod(top_level_boxes)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


@pytest.fixture(scope="session")
def sample_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 64x48 25 fps H.264 MP4 with 1.6 s of AAC sound (longer than the video)."""
    folder = tmp_path_factory.mktemp("media")
    return write_video(folder / "sample.mp4", frames=30, audio_seconds=1.6)
