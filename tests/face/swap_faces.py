"""Faces of two different people, for face-swap tests.

scikit-image ships the astronaut portrait (one person) and a subset of LFW faces (other people,
25x25 grey crops). An LFW face enlarged onto a canvas, tinted to a skin tone, is a second
identity that dlib detects and embeds (about 0.8 from the astronaut's, well past the 0.6 that
separates people), so a swap between the two has an identity to move towards.
"""

from functools import cache

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
