"""Faces of two different people, for face-swap tests.

scikit-image ships the astronaut portrait (one person) and a subset of LFW faces (other people,
25x25 grey crops). An LFW face enlarged onto a canvas, tinted to a skin tone, is a second
identity that dlib detects and embeds (about 0.8 from the astronaut's, well past the 0.6 that
separates people), so a swap between the two has an identity to move towards.
"""

from collections.abc import Iterable, Iterator
from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

OTHER = 1  # the LFW face used as the second person


@cache
def lfw_faces() -> np.ndarray:
    return data.lfw_subset()


def other_person(side: int = 160, canvas: int = 320, index: int = OTHER) -> np.ndarray:
    """An RGB photo of someone other than the astronaut: an LFW face ``side`` px wide, centred."""
    face = (lfw_faces()[index] * 255).astype(np.uint8)
    big = np.asarray(Image.fromarray(face).resize((side, side), Image.Resampling.BICUBIC))
    grey = np.full((canvas, canvas), int(big.mean()), np.uint8)
    top = (canvas - side) // 2
    grey[top : top + side, top : top + side] = big
    tinted = np.stack([grey] * 3, -1).astype(np.float32) * np.array([1.08, 0.95, 0.85], np.float32)
    return np.clip(tinted, 0, 255).astype(np.uint8)


def astronaut_face(side: int = 200) -> np.ndarray:
    """The astronaut's head and shoulders, ``side`` px square (a face about half as wide)."""
    crop = data.astronaut()[0:300, 70:370]
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 40) -> np.ndarray:
    """One frame with two people: ``left`` and ``right`` on a grey background, tops aligned."""
    h = max(left.shape[0], right.shape[0])
    frame = np.full((h + 2 * gap, left.shape[1] + right.shape[1] + 3 * gap, 3), 128, np.uint8)
    frame[gap : gap + left.shape[0], gap : gap + left.shape[1]] = left
    x = 2 * gap + left.shape[1]
    frame[gap : gap + right.shape[0], x : x + right.shape[1]] = right
    return frame


def turning_clip(frames: int) -> np.ndarray:
    """``frames`` 240x320 frames of the astronaut turning a little, then two with nobody in them."""
    from tests.face.conftest import move

    face = astronaut_face(200)
    out = []
    for i in range(frames):
        frame = np.full((240, 320, 3), 120, np.uint8)
        frame[20:220, 60:260] = move(face, angle_deg=1.5 * i, shift=(i, 0.0), centre=(100.0, 90.0))
        out.append(frame)
    empty = np.linspace(60, 200, 320, dtype=np.uint8)[None, :, None].repeat(240, 0).repeat(3, 2)
    return np.stack([*out, empty, empty])


def write_swap_inputs(folder: Path) -> tuple[Path, Path]:
    """A face photo of one person, and one second of the demo clip (the astronaut, with a hum)."""
    from animatica.demo import write_demo_driving

    photo = folder / "photo.png"
    Image.fromarray(other_person()).save(photo)
    return photo, write_demo_driving(folder / "clip.mp4", seconds=1.0, fps=10, size=192)


def actor_frames(frames: int, side: int = 128, every: int = 1) -> Iterator[np.ndarray]:
    """The astronaut's head, ``side`` px, moving one pixel sideways every ``every`` frames."""
    base = astronaut_face(side)
    for index in range(frames):
        yield np.ascontiguousarray(np.roll(base, index // every, axis=1))


def write_clip(path: Path, frames: Iterable[np.ndarray], fps: int = 8) -> Path:
    """``frames`` (RGB, all one even size) as an H.264 MP4, with no sound."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.pix_fmt = "yuv420p"
        for index, frame in enumerate(frames):
            if index == 0:
                stream.height, stream.width = frame.shape[:2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_actor_inputs(folder: Path, frames: int, side: int = 128, every: int = 1) -> tuple[Path, Path]:
    """``someone.png`` (`other_person`) and ``actor.mp4`` (`actor_frames` at 8 fps) in ``folder``."""
    photo = folder / "someone.png"
    Image.fromarray(other_person()).save(photo)
    return photo, write_clip(folder / "actor.mp4", actor_frames(frames, side, every))
