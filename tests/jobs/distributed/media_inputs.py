"""Inputs for the distributed tests: a real photographed face and a driving clip made from it."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def face_inputs(
    folder: Path, frames: int, size: int = 96, fps: int = 8, audio: bool = True
) -> tuple[Path, Path]:
    """A face image and a driving video of ``frames`` frames that moves it, with a tone when ``audio``."""
    from skimage import data

    face = data.astronaut()[0:300, 100:400]  # shipped with scikit-image
    source = folder / "face.png"
    Image.fromarray(face).resize((size, size)).save(source)
    driving = folder / "drive.mp4"
    with av.open(str(driving), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=44100) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for index in range(frames):
            shift = int(10 + 8 * np.sin(index / 3))
            picture = Image.fromarray(face[shift : 280 + shift, shift : 280 + shift]).resize((size, size))
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(picture), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            samples = frames * 44100 // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)[None]
            for start in range(0, samples, 1024):
                piece = np.ascontiguousarray(tone[:, start : start + 1024])
                chunk = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                chunk.sample_rate = 44100
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return source, driving


def decode_video(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_samples(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return 0
        return sum(frame.samples for frame in container.decode(audio=0))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 frames in dB (inf when identical)."""
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0**2 / error))


def frame_times(path: Path) -> list[Fraction]:
    """When each frame of ``path`` is shown, in seconds, exactly."""
    with av.open(str(path)) as container:
        return [Fraction(frame.pts) * frame.time_base for frame in container.decode(video=0)]


def sound(path: Path) -> np.ndarray:
    """The first audio stream's samples, ``(channels, samples)`` float32, as a player decodes them."""
    with av.open(str(path)) as container:
        pieces = [frame.to_ndarray() for frame in container.decode(audio=0)]
    return np.concatenate(pieces, axis=1)


def assert_looks_the_same(expected: Path, got: Path, min_psnr: float = 40.0) -> None:
    """``got`` shows what ``expected`` shows: the same frames at the same times, each frame within
    ``min_psnr`` dB (40 dB is far below what the eye notices), and the same sound over the video
    (the test inputs all have sound).

    A segmented result cannot be identical bit for bit to a single-process one: each segment's
    encoder starts afresh at its seam (a keyframe, its own rate control), so frames differ by
    encoder noise; and the join copies the driving video's AAC packets where the single process
    re-encodes them, so the sound may run on by up to one AAC packet (1024 samples).
    """
    before, after = decode_video(expected), decode_video(got)
    assert len(after) == len(before) > 0
    assert frame_times(got) == frame_times(expected)
    worst = min(psnr(a, b) for a, b in zip(before, after, strict=True))
    assert worst >= min_psnr, f"a frame is only {worst:.1f} dB from the single run's"
    assert audio_samples(got) > 0 and audio_samples(expected) > 0
    heard, wanted = sound(got), sound(expected)
    assert heard.shape[0] == wanted.shape[0]
    assert abs(heard.shape[1] - wanted.shape[1]) <= 1024
    with av.open(str(expected)) as container:
        rate, fps = container.streams.audio[0].rate, container.streams.video[0].average_rate
    end = int(len(before) / fps * rate)  # the sound past the last frame is cut at different points
    # A tone shifted by one sample correlates at 0.998: this holds only for sound in step. The first
    # AAC packet is left out: ``face_inputs`` writes no priming delay, so that packet is the
    # decoder's warm-up, which a copy and a re-encode warm up differently.
    assert np.corrcoef(heard[0, 1024:end], wanted[0, 1024:end])[0, 1] > 0.999
