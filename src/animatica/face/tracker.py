"""Follow one face through a video: landmarks per frame, ``None`` when the face is gone.

Scanning a whole frame for faces costs tens of milliseconds; looking again only in a small
region around where the face just was, scaled so the face is barely above the detector's
minimum size, costs a few. The detector still runs there (every ``detect_every`` frames) so a
face that leaves the picture is noticed instead of landmarks being fitted to a wall. Between
those checks the box follows the landmarks of the previous frame.
"""

import numpy as np

from animatica.face.analyzer import FaceAnalyzer, FaceBox, select_face


class FaceTracker:
    def __init__(
        self,
        analyzer: FaceAnalyzer,
        *,
        face_index: int | None = None,
        detect_every: int = 1,
        roi_margin: float = 0.25,
        min_score: float = -0.2,
    ) -> None:
        self.analyzer = analyzer
        self.face_index = face_index
        self.detect_every = max(1, detect_every)
        self.roi_margin = roi_margin
        self.min_score = min_score
        self.box: FaceBox | None = None
        # Detector box expressed relative to the landmark box, learnt at each detection, so
        # frames between detections get a box in the detector's own convention.
        self._box_from_points: tuple[float, float, float, float] | None = None
        self._count = 0

    def reset(self) -> None:
        self.box = None
        self._box_from_points = None
        self._count = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        check = self._count % self.detect_every == 0 or self.box is None or self._box_from_points is None
        self._count += 1
        if check:
            box = self._search_near(frame) if self.box is not None else None
            if box is None:
                box = self._search_all(frame)
            if box is None:
                self.box = None
                return None
        else:
            assert self.box is not None
            box = self.box
        points = self.analyzer.landmarks(frame, box)
        around = FaceBox.around(points)
        if check:
            self._box_from_points = _relative(box, around)
            self.box = box
        else:
            assert self._box_from_points is not None
            self.box = _absolute(self._box_from_points, around)
        return points

    def _search_near(self, frame: np.ndarray) -> FaceBox | None:
        assert self.box is not None
        prev = self.box
        h, w = frame.shape[:2]
        m = self.roi_margin * max(prev.width, prev.height)
        x0, y0 = max(0, int(prev.left - m)), max(0, int(prev.top - m))
        x1, y1 = min(w, int(prev.right + m) + 1), min(h, int(prev.bottom + m) + 1)
        if x1 - x0 < 8 or y1 - y0 < 8:
            return None
        found = self.analyzer.detect(frame[y0:y1, x0:x1], min_face=0.8 * prev.width, min_score=self.min_score)
        found = [b.shifted(x0, y0) for b in found]
        best = max(found, key=prev.iou, default=None)
        return best if best is not None and prev.iou(best) > 0.25 else None

    def _search_all(self, frame: np.ndarray) -> FaceBox | None:
        found = self.analyzer.detect(frame)
        if not found:
            return None
        if self.box is not None:  # lost for a moment: prefer the face where ours was
            best = max(found, key=self.box.iou)
            if self.box.iou(best) > 0.1:
                return best
        if self.face_index is not None and self.face_index >= len(found):
            return None
        return select_face(found, self.face_index)


def _relative(box: FaceBox, around: FaceBox) -> tuple[float, float, float, float]:
    w, h = max(around.width, 1.0), max(around.height, 1.0)
    return (
        (box.left - around.left) / w,
        (box.top - around.top) / h,
        (box.right - around.right) / w,
        (box.bottom - around.bottom) / h,
    )


def _absolute(rel: tuple[float, float, float, float], around: FaceBox) -> FaceBox:
    w, h = max(around.width, 1.0), max(around.height, 1.0)
    return FaceBox(
        around.left + rel[0] * w,
        around.top + rel[1] * h,
        around.right + rel[2] * w,
        around.bottom + rel[3] * h,
    )
