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
