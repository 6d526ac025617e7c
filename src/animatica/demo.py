"""Demo inputs made on the spot, so that the demo needs no download and ships no third-party media.

The source is the astronaut portrait that scikit-image ships inside its wheel (Eileen Collins,
a NASA photo in the public domain). The demo's driving video is someone else: a synthetic face
(``animatica.training.faces``) that talks in time with a generated voice-like hum, blinks and
turns its head a little, because carrying one person's expressions onto another's photo is what
Animatica is for; every stage of the pipeline — face tracking, motion transfer, frame rate,
sound — is exercised by ``make run``.

``demo_driving_frames`` (the photo itself gently nodding, turning and tilting) stays as a
self-contained moving real face for tests and benchmarks.
"""

from __future__ import annotations

import math
import os
import secrets
import tempfile
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage import data

from animatica.media.writer import VideoWriter

# The face in the 512x512 astronaut photo, as a square (left, top, right, bottom) with the
# hair, chin and a little collar inside, framed like a VoxCeleb crop.
FACE_BOX = (105, 0, 345, 240)
# Rotation pivot for the head motion: the base of the neck, so the chin swings more than the
# collar, as in a real nod.
_PIVOT = (225.0, 200.0)
# Where the head moves fully (ellipse centre and radii in photo pixels). Outside it the motion
# fades out smoothly, so the wall and suit bend slightly instead of showing a seam.
_HEAD_CENTRE = (225.0, 95.0)
_HEAD_RADII = (80.0, 95.0)
_FALLOFF = 22.0  # Gaussian blur of the motion weight, in photo pixels
_BORDER = 48  # edge padding around the photo so the warp never samples outside it

_AUDIO_RATE = 44_100


def demo_source() -> np.ndarray:
    """The astronaut's face, a 240x240 uint8 RGB crop of scikit-image's ``astronaut`` photo."""
    left, top, right, bottom = FACE_BOX
    return np.ascontiguousarray(data.astronaut()[top:bottom, left:right])


def _head_pose(t: float, seconds: float) -> tuple[float, float, float, float]:
    """(roll degrees, dx, dy, scale) at time ``t``: smooth, zero at the start, looping at ``seconds``.

    Whole numbers of cycles per clip keep the motion periodic; sines make the first frame the
    untouched photo, which is the neutral pose relative-motion animation measures from.
    """
    phase = 2.0 * math.pi * t / seconds
    roll = 6.0 * math.sin(phase)  # tilt side to side once
    turn = 7.0 * math.sin(2.0 * phase)  # look left and right twice
    nod = 5.0 * math.sin(3.0 * phase) * math.sin(phase / 2.0) ** 2  # nods that grow and settle
    scale = 1.0 + 0.03 * math.sin(phase) ** 2  # lean in a little
    return roll, turn, nod, scale


def _output_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo coordinates (x, y) of the output pixels' centres."""
    left, top, right, _ = FACE_BOX
    step = (right - left) / size
    centres = (np.arange(size) + 0.5) * step - 0.5
    return np.meshgrid(left + centres, top + centres)


def _motion_weight(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 on the head, falling smoothly to 0 away from it (a blurred ellipse)."""
    inside = ((x - _HEAD_CENTRE[0]) / _HEAD_RADII[0]) ** 2 + (
        (y - _HEAD_CENTRE[1]) / _HEAD_RADII[1]
    ) ** 2 <= 1
    step = float(x[0, 1] - x[0, 0])
    return ndimage.gaussian_filter(inside.astype(np.float64), _FALLOFF / step, mode="nearest")


def _sample_points(
    t: float, seconds: float, x: np.ndarray, y: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Where in the photo each output pixel looks at time ``t``.

    The head moves by a similarity transform about the neck pivot; each output point looks
    back through its inverse, blended with "no motion" by the weight, which for motions of a
    few pixels is a smooth, fold-free warp.
    """
    roll, dx, dy, scale = _head_pose(t, seconds)
    angle = math.radians(roll)
    cos_a, sin_a = math.cos(angle) / scale, math.sin(angle) / scale
    rel_x = x - _PIVOT[0] - dx
    rel_y = y - _PIVOT[1] - dy
    back_x = _PIVOT[0] + cos_a * rel_x + sin_a * rel_y
    back_y = _PIVOT[1] - sin_a * rel_x + cos_a * rel_y
    return x + weight * (back_x - x), y + weight * (back_y - y)


def _frame_times(seconds: float, fps: int) -> list[float]:
    return [index / fps for index in range(max(1, round(seconds * fps)))]


def demo_driving_frames(seconds: float = 4.0, fps: int = 25, size: int = 256) -> Iterator[np.ndarray]:
    """The demo driving frames, ``(size, size, 3)`` uint8, ``round(seconds * fps)`` of them.

    Pure arithmetic on the shipped photo, so the same arguments give the same pixels on any
    machine (the encoded file is not byte-identical across runs: x264's output may vary).
    """
    if seconds <= 0 or fps <= 0 or size < 16:
        raise ValueError(f"need seconds > 0, fps > 0 and size >= 16, got {seconds}, {fps}, {size}")
    photo = np.pad(data.astronaut(), ((_BORDER, _BORDER), (_BORDER, _BORDER), (0, 0)), mode="edge")
    planes = [np.ascontiguousarray(photo[:, :, c], dtype=np.float32) for c in range(3)]
    x, y = _output_grid(size)
    weight = _motion_weight(x, y)
    for t in _frame_times(seconds, fps):
        src_x, src_y = _sample_points(t, seconds, x, y, weight)
        where = [src_y + _BORDER, src_x + _BORDER]
        channels = [
            ndimage.map_coordinates(plane, where, order=1, mode="nearest") for plane in planes
        ]  # bilinear
        yield np.clip(np.rint(np.stack(channels, axis=-1)), 0, 255).astype(np.uint8)


def demo_voice(seconds: float) -> np.ndarray:
    """A soft hummed "speech" track: a gliding 170 Hz voice with harmonics in syllable bursts.

    Syllables come about four times a second with a rest every second beat, so the sound has
    the rhythm of talking without being anyone's voice. Mono float64 in [-1, 1] at 44.1 kHz.
    """
    t = np.arange(round(seconds * _AUDIO_RATE)) / _AUDIO_RATE
    pitch = 170.0 + 20.0 * np.sin(2 * np.pi * 0.5 * t) + 4.0 * np.sin(2 * np.pi * 5.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / _AUDIO_RATE
    voice = sum(np.sin(k * phase) / k**1.5 for k in range(1, 7))
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    rests = 0.5 + 0.5 * np.cos(2 * np.pi * 0.5 * t)  # talk, pause, talk…
    fade = np.clip(np.minimum(t, t[-1] - t) / 0.05, 0.0, 1.0)
    signal = voice * syllable * rests * fade
    return 0.3 * signal / max(1e-9, float(np.abs(signal).max()))


def _syllables(t: np.ndarray) -> np.ndarray:
    """The voice's loudness envelope in [0, 1] (``demo_voice``'s syllables and rests)."""
    syllable = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 2
    rests = 0.5 + 0.5 * np.cos(2 * np.pi * 0.5 * t)
    return syllable * rests


def talking_face_motion(seconds: float = 4.0, fps: int = 25) -> list[dict[str, float]]:
    """Expression and pose of the demo's talking face, one dict per frame (``faces.MOTION`` names).

    The mouth opens with the hum's syllables, the eyes blink twice, the brows lift on the loud
    phrases, and the head turns, nods and tilts a few degrees; every value starts at zero, so the
    first frame is neutral and frontal like the photo it drives.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"need seconds > 0 and fps > 0, got {seconds}, {fps}")
    t = np.arange(max(1, round(seconds * fps))) / fps
    phase = 2 * np.pi * t / seconds
    blink = sum(np.exp(-(((t - c) / 0.07) ** 2)) for c in (1.15, 3.05))
    motion = {
        "mouth_open": 0.85 * _syllables(t),
        "smile": 0.25 * np.sin(phase / 2) ** 2,
        "blink": np.clip(blink, 0, 1),
        "brows": 0.5 * np.sin(phase) * np.sin(phase / 2) ** 2,
        "yaw": 10.0 * np.sin(phase),
        "pitch": 5.0 * np.sin(2 * phase) * np.sin(phase / 2) ** 2,
        "roll": 4.0 * np.sin(phase) * np.sin(phase / 2),
    }
    return [{name: round(float(values[i]), 6) for name, values in motion.items()} for i in range(len(t))]


# The demo's talking person: mid-range proportions, short dark hair, brown eyes; plain backdrop.
_TALKER = {
    "face_width": 0.98, "face_length": 1.0, "jaw_width": 0.8, "jaw_round": 2.6, "skin_tone": 0.35,
    "skin_warmth": 0.6, "hair_style": 0.0, "hair_volume": 0.12, "hairline": 0.08, "eye_spacing": 0.485,
    "eye_size": 1.0, "eye_open": 1.0, "eye_tilt": 0.01, "brow_height": 0.0, "brow_thickness": 0.07,
    "brow_arch": 0.03, "nose_length": 1.0, "nose_width": 1.0, "nose_depth": 1.0, "mouth_width": 1.0,
    "lip_upper": 0.085, "lip_lower": 0.11, "lip_red": 0.5, "ear_size": 1.0, "hair_r": 0.2, "hair_g": 0.13,
    "hair_b": 0.08, "iris_r": 0.3, "iris_g": 0.18, "iris_b": 0.08,
}  # fmt: skip
_TALKER_SCENE = {
    "background": 1.0, "background_angle": 1.2, "background_seed": 0.0, "light_angle": -2.0,
    "light_strength": 0.4, "scale": 1.0, "shift_x": 0.0, "shift_y": 0.0, "collar": 0.0,
    "background_1_r": 0.55, "background_1_g": 0.62, "background_1_b": 0.7, "background_2_r": 0.3,
    "background_2_g": 0.36, "background_2_b": 0.45, "shirt_r": 0.2, "shirt_g": 0.3, "shirt_b": 0.5,
}  # fmt: skip


def talking_face_frames(seconds: float = 4.0, fps: int = 25, size: int = 256) -> Iterator[np.ndarray]:
    """The synthetic talking face, ``(size, size, 3)`` uint8 frames, deterministic."""
    if size not in (64, 128, 256):
        raise ValueError(f"the talking face is rendered at 64, 128 or 256 px, not {size}")
    from animatica.training.faces.render import background, render_frame

    backdrop = background(_TALKER_SCENE, size)
    for frame in talking_face_motion(seconds, fps):
        yield render_frame(_TALKER, _TALKER_SCENE, frame, size, backdrop)[0]


def _write_wav(path: Path, samples: np.ndarray) -> None:
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(_AUDIO_RATE)
        handle.writeframes(pcm.tobytes())


def write_demo_driving(path: Path, seconds: float = 4.0, fps: int = 25, size: int = 256) -> Path:
    """Write the photo's own moving clip (H.264 MP4 with AAC sound) to ``path`` and return it.

    The frames are ``demo_driving_frames`` and the sound ``demo_voice``, both deterministic.
    The file appears atomically.
    """
    return _write_clip(path, demo_driving_frames(seconds, fps, size), seconds, fps)


def write_talking_face(path: Path, seconds: float = 4.0, fps: int = 25, size: int = 256) -> Path:
    """Write the synthetic talking face with its hum (H.264 MP4 with AAC sound) to ``path``."""
    return _write_clip(path, talking_face_frames(seconds, fps, size), seconds, fps)


def _write_clip(path: Path, frames: Iterator[np.ndarray], seconds: float, fps: int) -> Path:
    path = Path(path)
    first = next(frames)  # validates the arguments before any file exists
    with tempfile.TemporaryDirectory(prefix="animatica-demo-") as scratch:
        sound = Path(scratch) / "voice.wav"
        _write_wav(sound, demo_voice(seconds))
        with VideoWriter(path, fps, audio_from=sound) as writer:
            writer.write(first)
            for frame in frames:
                writer.write(frame)
    return path


def write_demo_inputs(folder: Path) -> tuple[Path, Path]:
    """Make sure ``folder`` holds ``source.png`` (the astronaut) and ``driving.mp4`` (the talking
    face); existing files are reused."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "source.png"
    if not source.is_file():
        partial = folder / f".source.png.part-{secrets.token_hex(4)}"
        try:
            Image.fromarray(demo_source()).save(partial, format="PNG")
            os.replace(partial, source)
        finally:
            partial.unlink(missing_ok=True)
    driving = folder / "driving.mp4"
    if not driving.is_file():
        write_talking_face(driving)
    return source, driving
