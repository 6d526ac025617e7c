"""Small recordings for the tests: JPEG frames as the live loop sends them, and microphone sound as
a browser's MediaRecorder hands it over (WebM/Opus, cut into chunks)."""

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from animatica.live.recording import Recorder

SIZE = 64


def jpeg(level: int, size: int = SIZE) -> bytes:
    """A flat grey frame whose level tells the frames apart after decoding."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), level, dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def opus_webm(seconds: float, rate: int = 48000) -> bytes:
    """A 440 Hz tone as a live WebM/Opus stream (no index, like MediaRecorder's)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm", options={"live": "1"}) as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        step = rate // 50
        for start in range(0, int(seconds * rate), step):
            tone = 0.3 * np.sin(2 * np.pi * 440 * (np.arange(step) + start) / rate)
            frame = av.AudioFrame.from_ndarray(tone.astype(np.float32)[None], format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def chunks(data: bytes, size: int = 4000) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def record(
    path: Path,
    times_ms: list[float],
    sound: bytes | None = None,
    sound_started_ms: float = 0.0,
    size: int = SIZE,
) -> Path:
    """A finished recording of frames at ``times_ms`` (frame i has grey level 4 * i)."""
    recorder = Recorder(path, size)
    for index, time_ms in enumerate(times_ms):
        recorder.add_frame(jpeg((4 * index) % 256, size), time_ms)
        if sound is not None and index == 0:
            for chunk in chunks(sound):
                recorder.add_audio(sound_started_ms, chunk)
    finished = recorder.finish()
    assert finished == path
    return path
