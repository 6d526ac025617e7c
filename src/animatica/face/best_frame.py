"""Best-frame search: the driving frame whose face pose and expression best match the source.

FOMM's relative motion assumes the source and the initial driving frame show the same pose;
when they do not, the mismatch is carried into every frame. Starting from the driving frame
that looks most like the source (and animating forwards and backwards from it) avoids that.
Frames are compared by landmarks normalised for position and size (``geometry.normalise``), so
the match is on pose and expression, not on where the face sits in the picture.
"""

from collections.abc import Iterable

import numpy as np

from animatica.face import geometry as g
from animatica.face.analyzer import FaceAnalyzer, get_analyzer, select_face
from animatica.face.tracker import FaceTracker


def find_best_frame(
    source: np.ndarray,
    driving_frames: Iterable[np.ndarray],
    *,
    analyzer: FaceAnalyzer | None = None,
    face_index: int | None = None,
) -> int:
    """Index of the driving frame closest to the source; frames without a face are skipped.

    Falls back to 0 when no driving frame shows a face (the animation then simply starts at the
    beginning, as it would without the search).
    """
    analyzer = analyzer or get_analyzer()
    box = select_face(analyzer.detect(source, thorough=True), face_index, "the source image")
    target = g.normalise(analyzer.landmarks(source, box))
    tracker = FaceTracker(analyzer)
    best, best_distance = 0, np.inf
    for i, frame in enumerate(driving_frames):
        points = tracker(frame)
        if points is None:
            continue
        distance = float(((g.normalise(points) - target) ** 2).sum())
        if distance < best_distance:
            best, best_distance = i, distance
    return best
