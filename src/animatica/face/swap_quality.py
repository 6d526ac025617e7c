"""How good a face swap is, measured on the original and the swapped video, frame by frame.

 - Identity (as AED measures it): the dlib ResNet embedding of the swapped face against the
   photo's, and against the original actor's in the same frame. A swap worth the name moves the
   face towards the photo: ``to_photo`` well below ``original_to_photo`` (the actor's own
   distance to the photo), ``to_original`` well above 0. About 0.6 separates people.
 - Expression: the landmark motion of the swapped face against the original's. Landmarks are
   normalised per frame (centred, unit size: ``geometry.normalise``), their mean over the clip
   is taken away, and the Pearson correlation of what is left says whether the swapped face
   moves as the actor did (1: the same motion).
 - Temporal stability: landmark jitter, the mean size of the second difference of each landmark
   between frames (smooth motion has almost none; shimmer has much), in face sizes, for both
   videos: the swap should not add any.
Frames where either video shows no face are skipped and counted. The largest face of each frame
is measured, which is the swapped one under ``--which largest``.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import FaceAnalyzer, get_analyzer


@dataclass(frozen=True)
class SwapQuality:
    frames: int
    measured: int  # frames where both videos show a face
    to_photo: float  # mean identity distance, swapped face to the photo
    to_original: float  # mean identity distance, swapped face to the original face of that frame
    original_to_photo: float  # mean identity distance, original face to the photo (the baseline)
    expression_correlation: float
    jitter_swapped: float  # face sizes per frame
    jitter_original: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _jitter(track: list[np.ndarray]) -> float:
    if len(track) < 3:
        return float("nan")
    points = np.stack(track)
    sizes = np.array([g.face_size(p) for p in track])[1:-1, None]
    second = np.linalg.norm(points[2:] - 2 * points[1:-1] + points[:-2], axis=2)
    return float((second / sizes).mean())


def swap_quality(
    photo: np.ndarray,
    original: Iterable[np.ndarray],
    swapped: Iterable[np.ndarray],
    *,
    analyzer: FaceAnalyzer | None = None,
    identity_every: int = 1,
) -> SwapQuality:
    """Compare ``swapped`` with ``original`` (same frames, in order) and the ``photo``'s identity.

    ``identity_every`` embeds every N-th measured frame only (an embedding costs tens of ms).
    """
    analyzer = analyzer or get_analyzer()
    faces = analyzer.detect(photo, thorough=True)
    if not faces:
        raise AnimaticaError("No face was found in the face photo, so there is no identity to compare with.")
    photo_id = analyzer.embedding(photo, faces[0])
    to_photo: list[float] = []
    to_original: list[float] = []
    baseline: list[float] = []
    moved_o: list[np.ndarray] = []
    moved_s: list[np.ndarray] = []
    frames = 0
    sentinel = object()
    it_o, it_s = iter(original), iter(swapped)
    while True:
        o, s = next(it_o, sentinel), next(it_s, sentinel)
        if o is sentinel and s is sentinel:
            break
        if o is sentinel or s is sentinel:
            raise AnimaticaError("The original and swapped videos have different frame counts.")
        assert isinstance(o, np.ndarray) and isinstance(s, np.ndarray)
        frames += 1
        box_o, box_s = analyzer.detect(o), analyzer.detect(s)
        if not box_o or not box_s:
            continue
        moved_o.append(analyzer.landmarks(o, box_o[0]).astype(np.float64))
        moved_s.append(analyzer.landmarks(s, box_s[0]).astype(np.float64))
        if (len(moved_o) - 1) % identity_every == 0:
            id_o, id_s = analyzer.embedding(o, box_o[0]), analyzer.embedding(s, box_s[0])
            to_photo.append(float(np.linalg.norm(id_s - photo_id)))
            to_original.append(float(np.linalg.norm(id_s - id_o)))
            baseline.append(float(np.linalg.norm(id_o - photo_id)))
    if not moved_o:
        raise AnimaticaError("No frame of the videos shows a face in both: nothing to measure.")
    norm_o = np.stack([g.normalise(p) for p in moved_o])
    norm_s = np.stack([g.normalise(p) for p in moved_s])
    motion_o = (norm_o - norm_o.mean(axis=0)).ravel()
    motion_s = (norm_s - norm_s.mean(axis=0)).ravel()
    spread = float(np.linalg.norm(motion_o) * np.linalg.norm(motion_s))
    correlation = float(motion_o @ motion_s / spread) if spread > 0 else float("nan")
    return SwapQuality(
        frames=frames,
        measured=len(moved_o),
        to_photo=float(np.mean(to_photo)),
        to_original=float(np.mean(to_original)),
        original_to_photo=float(np.mean(baseline)),
        expression_correlation=correlation,
        jitter_swapped=_jitter(moved_s),
        jitter_original=_jitter(moved_o),
    )
