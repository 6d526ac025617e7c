"""Real faces with known motions.

The only face photo scikit-image ships at a usable size is ``astronaut.png`` (its LFW subset is
25x25 pixels). Driving clips are made from it by moving it by known amounts, so the motion the
animated output must show is known exactly.
"""

from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage
from skimage import data

from animatica.face.analyzer import DlibFaceAnalyzer, get_analyzer

# Roughly the middle of the astronaut's face, in the 512x512 photo.
FACE_CENTRE = (222.0, 125.0)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="session")
def analyzer() -> DlibFaceAnalyzer:
    return get_analyzer("hog")


@pytest.fixture(scope="session")
def astronaut_landmarks(astronaut: np.ndarray, analyzer: DlibFaceAnalyzer) -> np.ndarray:
    return analyzer.landmarks(astronaut, analyzer.detect(astronaut)[0])


def similarity_matrix(angle_deg: float, scale: float, shift: tuple[float, float], centre) -> np.ndarray:
    """(2, 3) matrix of the motion: rotate/scale about ``centre``, then shift."""
    a = np.deg2rad(angle_deg)
    lin = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    c = np.asarray(centre, dtype=np.float64)
    return np.c_[lin, c + np.asarray(shift) - lin @ c]


def move(
    image: np.ndarray,
    angle_deg: float = 0.0,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    centre=FACE_CENTRE,
) -> np.ndarray:
    """The photo moved rigidly: point p goes to M p (bilinear resampling, edges repeated)."""
    m = similarity_matrix(angle_deg, scale, shift, centre)
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    out = np.stack(
        [
            ndimage.map_coordinates(image[..., c].astype(np.float64), [sy, sx], order=1, mode="nearest")
            for c in range(3)
        ],
        axis=-1,
    )
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def open_mouth(image: np.ndarray, landmarks: np.ndarray, amount: float) -> np.ndarray:
    """The jaw dropped by ``amount`` pixels: everything below the lips' parting line, between the
    jaw's sides, moves down (fading out below the chin) and the gap left is mouth-dark."""
    h, w = image.shape[:2]
    line = landmarks[[61, 62, 63, 65, 66, 67], 1].mean()
    x0, x1 = landmarks[4, 0], landmarks[12, 0]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    across = np.clip(np.minimum(xs - x0, x1 - xs) / 12.0, 0, 1)
    bottom = landmarks[8, 1] + 25
    fade = np.clip((bottom + 20 - ys) / 20.0, 0, 1)
    dy = amount * across * fade * (ys >= line + amount)
    out = np.stack(
        [
            ndimage.map_coordinates(image[..., c].astype(np.float64), [ys - dy, xs], order=1, mode="nearest")
            for c in range(3)
        ],
        axis=-1,
    )
    gap = (ys >= line) & (ys < line + amount) & (xs > landmarks[60, 0]) & (xs < landmarks[64, 0])
    out[gap] = [40, 15, 15]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


@pytest.fixture(scope="session")
def mover() -> Callable[..., np.ndarray]:
    return move


@pytest.fixture(scope="session")
def mouth_opener() -> Callable[..., np.ndarray]:
    return open_mouth
