"""Follow one face through a video: landmarks per frame, ``None`` when the face is gone.

Scanning a whole frame for faces costs tens of milliseconds; looking again only in a small
region around where the face just was, scaled so the face is barely above the detector's
minimum size, costs a few. The detector still runs there (every ``detect_every`` frames) so a
face that leaves the picture is noticed instead of landmarks being fitted to a wall. Between
those checks the box follows the landmarks of the previous frame.

The first frame gets the analyzer's thorough search (it is the one frame where a face must be
found). Later frames are scanned the way the face was first found (``FaceAnalyzer.detect``'s
``like``): a squashed face keeps being stretched back, a small one keeps being enlarged, and a
face only the CNN sees is checked by the CNN, but only every ``slow_every`` frames, since it
costs far more than HOG.
"""

from dataclasses import replace

import numpy as np

from animatica.face.analyzer import FaceAnalyzer, FaceBox, select_face

_SLOW = "cnn"  # the scan too slow to run on every frame


class FaceTracker:
    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        face_index: int | None = None,
        detect_every: int = 1,
        roi_margin: float = 0.25,
        min_score: float = -0.2,
        slow_every: int = 8,
        lost_margin: float = 1.0,
    ) -> None:
        self.analyzer = analyzer
        self.face_index = face_index
        self.detect_every = max(1, detect_every)
        self.roi_margin = roi_margin
        self.min_score = min_score
        self.slow_every = max(1, slow_every)
        self.lost_margin = lost_margin
        self.box: FaceBox | None = None
        # The last box a detector gave: how the face was found, and where it was last seen.
        self.found: FaceBox | None = None
        # Detector box expressed relative to the landmark box, learnt at each detection, so
        # frames between detections get a box in the detector's own convention.
        self._box_from_points: tuple[float, float, float, float] | None = None
        self._count = 0
        self._lost = 0

    def reset(self) -> None:
        self.box = None
        self.found = None
        self._box_from_points = None
        self._count = 0
        self._lost = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        every = self.detect_every
        if self.found is not None and self.found.detector == _SLOW:
            every = max(every, self.slow_every)
        check = self._count % every == 0 or self.box is None or self._box_from_points is None
        first = self._count == 0
        self._count += 1
        if check:
            box = self._search_near(frame, self.box, self.roi_margin) if self.box is not None else None
            if box is None:
                box = self._search_all(frame, thorough=first)
            if box is None:
                self.box = None
                self._lost += 1
                return None
            self._lost = 0
        else:
            assert self.box is not None
            box = self.box
        points = self.analyzer.landmarks(frame, box)
        around = FaceBox.around(points)
        if check:
            self._box_from_points = _relative(box, around)
            self.box = self.found = box
        else:
            assert self._box_from_points is not None
            self.box = _absolute(self._box_from_points, around, box)
        return points

    def _search_near(self, frame: np.ndarray, prev: FaceBox, margin: float) -> FaceBox | None:
        return search_near(self.analyzer, frame, prev, margin=margin, min_score=self.min_score)

    def _search_all(self, frame: np.ndarray, thorough: bool) -> FaceBox | None:
        found = self.analyzer.detect(frame, thorough=thorough)
        last = self.found
        if not found and last is not None and last.detector != "hog":
            found = self._search_like(frame, last)
        if not found:
            return None
        if last is not None:  # lost for a moment: prefer the face where ours was
            best = max(found, key=last.iou)
            if last.iou(best) > 0.1:
                return best
        if self.face_index is not None and self.face_index >= len(found):
            return None
        return select_face(found, self.face_index)

    def _search_like(self, frame: np.ndarray, last: FaceBox) -> list[FaceBox]:
        """Look again for a face that only a fallback scan found, where it was last seen.

        A squashed picture stays squashed, so the whole frame is scanned stretched back (as
        cheap as the quick scan). Small faces and faces only the CNN sees are looked for around
        where they were lost, since scanning a whole frame that way costs up to seconds; the CNN
        only every ``slow_every`` frames.
        """
        if last.detector == "hog-aspect":
            return self.analyzer.detect(frame, like=last)
        if last.detector == _SLOW and (self._lost + 1) % self.slow_every:
            return []
        box = self._search_near(frame, last, self.lost_margin)
        return [box] if box is not None else []


def search_near(
    analyzer: FaceAnalyzer, frame: np.ndarray, prev: FaceBox, *, margin: float, min_score: float | None
) -> FaceBox | None:
    """The face overlapping ``prev`` in a region ``margin`` face sizes around it, found the way
    ``prev`` was; the region is scanned at the scale where that face barely fills the detector's
    window, so this costs little whatever the frame's size and whichever detector it takes."""
    h, w = frame.shape[:2]
    m = margin * max(prev.width, prev.height)
    x0, y0 = max(0, int(prev.left - m)), max(0, int(prev.top - m))
    x1, y1 = min(w, int(prev.right + m) + 1), min(h, int(prev.bottom + m) + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    found = analyzer.detect(frame[y0:y1, x0:x1], min_face=0.8 * prev.width, min_score=min_score, like=prev)
    found = [b.shifted(x0, y0) for b in found]
    best = max(found, key=prev.iou, default=None)
    return best if best is not None and prev.iou(best) > 0.25 else None


def _relative(box: FaceBox, around: FaceBox) -> tuple[float, float, float, float]:
    w, h = max(around.width, 1.0), max(around.height, 1.0)
    return (
        (box.left - around.left) / w,
        (box.top - around.top) / h,
        (box.right - around.right) / w,
        (box.bottom - around.bottom) / h,
    )


def _absolute(rel: tuple[float, float, float, float], around: FaceBox, found: FaceBox) -> FaceBox:
    """The box that ``found``'s detector would give around these landmarks (and how it found it)."""
    w, h = max(around.width, 1.0), max(around.height, 1.0)
    return replace(
        found,
        left=around.left + rel[0] * w,
        top=around.top + rel[1] * h,
        right=around.right + rel[2] * w,
        bottom=around.bottom + rel[3] * h,
    )
