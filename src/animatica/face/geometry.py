"""The 68-point landmark layout and the 2-D similarity geometry built on it.

Indices follow the iBUG 300-W convention that dlib (and most face tools) use. A similarity
(rotation, uniform scale, translation) is stored as a ``(2, 3)`` matrix ``[sR | t]`` acting on
column vectors, so ``points @ M[:, :2].T + M[:, 2]`` maps ``(N, 2)`` points.
"""

import numpy as np

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
RIGHT_EYE = np.arange(36, 42)  # the person's right eye, on the left of the picture
LEFT_EYE = np.arange(42, 48)
OUTER_LIPS = np.arange(48, 60)
INNER_LIPS = np.arange(60, 68)

# Points that move with the skull and hardly with expressions: where head pose is measured.
RIGID = np.array([27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45])

# (upper lid, lower lid) pairs that face each other across an eye opening.
EYE_PAIRS = np.array([[37, 41], [38, 40], [43, 47], [44, 46]])
# (upper inner lip, lower inner lip) pairs that face each other across the mouth opening.
MOUTH_PAIRS = np.array([[61, 67], [62, 66], [63, 65]])


def face_size(points: np.ndarray) -> float:
    """A scale for the face that ignores pose and expression: the outer eye corners to mouth span.

    Uses the distance from the midpoint of the outer eye corners to the mouth centre plus the
    inter-ocular distance, both stable under blinks, mouth opening and moderate head turns.
    """
    eyes = (points[36] + points[45]) / 2
    mouth = (points[48] + points[54]) / 2
    return float(np.linalg.norm(points[45] - points[36]) + np.linalg.norm(mouth - eyes))


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity mapping ``src`` onto ``dst`` (Umeyama's closed form, no reflection)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    var = (a**2).sum() / len(src)
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    s = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[1, 1] = -1
    rot = u @ s @ vt
    scale = (d * np.diag(s)).sum() / var if var > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    lin = np.linalg.inv(m[:, :2])
    out = np.zeros((2, 3))
    out[:, :2] = lin
    out[:, 2] = -lin @ m[:, 2]
    return out


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The similarity that applies ``b`` first, then ``a``."""
    out = np.zeros((2, 3))
    out[:, :2] = a[:, :2] @ b[:, :2]
    out[:, 2] = a[:, :2] @ b[:, 2] + a[:, 2]
    return out


def decompose(m: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(angle in radians, scale, translation) of a similarity."""
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    angle = float(np.arctan2(m[1, 0], m[0, 0]))
    return angle, scale, m[:, 2].copy()


def similarity(angle: float, scale: float, translation: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    return np.array([[c, -s, translation[0]], [s, c, translation[1]]])


def down_axis(points: np.ndarray) -> np.ndarray:
    """Unit vector from the eyes towards the chin, perpendicular to the outer eye corners' line."""
    across = points[45] - points[36]
    across = across / max(float(np.linalg.norm(across)), 1e-9)
    return np.array([-across[1], across[0]])


def normalise(points: np.ndarray) -> np.ndarray:
    """Landmarks centred on their mean and scaled to unit RMS radius: pose and expression only."""
    centred = points - points.mean(axis=0)
    radius = np.sqrt((centred**2).sum(axis=1).mean())
    return centred / max(radius, 1e-9)


def separate_lips(points: np.ndarray) -> np.ndarray:
    """Landmarks with no two on one spot, for a triangulation over them: closed lips put upper
    and lower inner-lip points on the same pixel, so a closed mouth gets a half-pixel gap."""
    out = points.astype(np.float64).copy()
    down = down_axis(out)
    for upper, lower in MOUTH_PAIRS:
        gap = float((out[lower] - out[upper]) @ down)
        if gap < 1.0:
            mid = (out[lower] + out[upper]) / 2
            out[upper] = mid - 0.5 * down
            out[lower] = mid + 0.5 * down
    # Any other coincident points (dlib rounds to whole pixels) get nudged apart.
    _, first = np.unique(np.round(out, 3), axis=0, return_index=True)
    for i in sorted(set(range(len(out))) - set(first.tolist())):
        out[i] += 0.25
    return out
