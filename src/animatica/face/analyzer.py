"""One small interface over a face model backend: detect faces, place landmarks, embed identity.

The rest of Animatica sees faces only through ``FaceAnalyzer``. The shipped backend is dlib
(``DlibFaceAnalyzer``): its wheels are self-contained, its pretrained files come in
``face-recognition-models``, its HOG detector runs in milliseconds on a CPU and its 68-point
predictor in about as long. A mediapipe face-mesh backend would implement the same three methods
(reducing its 468 points to the 68-point layout in ``geometry.py``).
"""

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from animatica.errors import AnimaticaError
from animatica.face import models

DetectorName = Literal["hog", "cnn"]

_WINDOW = 80  # the smallest face (pixels) dlib's detectors find without upsampling


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixel coordinates of the image it was found in."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 0.0

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.left + self.right) / 2, (self.top + self.bottom) / 2)

    def scaled(self, factor: float) -> "FaceBox":
        return FaceBox(
            self.left * factor, self.top * factor, self.right * factor, self.bottom * factor, self.score
        )

    def shifted(self, dx: float, dy: float) -> "FaceBox":
        return FaceBox(self.left + dx, self.top + dy, self.right + dx, self.bottom + dy, self.score)

    def iou(self, other: "FaceBox") -> float:
        w = min(self.right, other.right) - max(self.left, other.left)
        h = min(self.bottom, other.bottom) - max(self.top, other.top)
        inter = max(w, 0.0) * max(h, 0.0)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    @classmethod
    def around(cls, points: np.ndarray, score: float = 0.0) -> "FaceBox":
        """The box spanned by landmarks: used to track a face from one frame to the next."""
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        return cls(float(x0), float(y0), float(x1), float(y1), score)


@runtime_checkable
class FaceAnalyzer(Protocol):
    def detect(
        self, image: np.ndarray, *, min_face: float | None = None, min_score: float | None = None
    ) -> list[FaceBox]:
        """All faces in an RGB uint8 image, largest first.

        ``min_face`` (pixels) is the smallest face width worth finding; a tracker that knows
        the face size passes it so the backend can scan a smaller image. ``min_score`` overrides
        the backend's confidence threshold (a tracker looking where a face just was can be
        more lenient than a search of a whole photo).
        """
        ...

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """The 68 landmarks (iBUG 300-W layout) of the face in ``box``, as ``(68, 2)`` float (x, y)."""
        ...

    def embedding(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        """A ``(128,)`` identity vector; same person ⇔ Euclidean distance below about 0.6."""
        ...


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A C-contiguous uint8 RGB view, which is what dlib accepts without copying again."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise AnimaticaError(
            f"Expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}."
        )
    return np.ascontiguousarray(image)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _rect(box: FaceBox) -> Any:
    return models._dlib().rectangle(round(box.left), round(box.top), round(box.right), round(box.bottom))


class DlibFaceAnalyzer:
    """dlib backend.

    ``max_side`` bounds the image the detector scans (large photos are shrunk first: the HOG
    detector finds faces from 80 px wide, so a 1080p frame scanned at 1024 px still finds every
    face wider than about 85 px). Images that end up smaller than ``upsample_below`` are scanned
    once more at twice the size so that faces down to about 40 px are found.
    ``landmark_width`` resamples small faces to about that width before placing landmarks: dlib
    returns integer pixel positions, and doing it on an enlarged face makes them sub-pixel, which
    removes most of the jitter on small driving videos. Detections scoring ``doubt_margin``
    below the best one in the same image are dropped.
    """

    def __init__(
        self,
        detector: DetectorName = "hog",
        *,
        min_score: float = 0.0,
        max_side: int = 1024,
        upsample_below: int = 640,
        landmark_width: int = 160,
        doubt_margin: float = 0.8,
    ) -> None:
        if detector not in ("hog", "cnn"):
            raise AnimaticaError(f"Unknown face detector {detector!r}: use 'hog' or 'cnn'.")
        self.detector = detector
        self.min_score = min_score
        self.max_side = max_side
        self.upsample_below = upsample_below
        self.landmark_width = landmark_width
        self.doubt_margin = doubt_margin

    def detect(
        self, image: np.ndarray, *, min_face: float | None = None, min_score: float | None = None
    ) -> list[FaceBox]:
        image = as_rgb(image)
        threshold = self.min_score if min_score is None else min_score
        h, w = image.shape[:2]
        if min_face is None:
            factor = min(1.0, self.max_side / max(h, w))
            upsample = 1 if max(h, w) * factor < self.upsample_below else 0
        else:
            # Scan at the scale where the smallest wanted face fills the detector's window.
            factor = min(_WINDOW / max(min_face, 1.0), self.max_side / max(h, w))
            upsample = 0
        if abs(factor - 1.0) > 1e-3:
            work = resize(image, max(1, round(w * factor)), max(1, round(h * factor)))
            factor_x, factor_y = work.shape[1] / w, work.shape[0] / h
        else:
            work, factor_x, factor_y = image, 1.0, 1.0
        boxes: list[FaceBox] = []
        if self.detector == "hog":
            rects, scores, _ = models.frontal_detector().run(work, upsample, min(threshold, 0.0))
            for rect, score in zip(rects, scores, strict=True):
                if score >= threshold:
                    boxes.append(FaceBox(rect.left(), rect.top(), rect.right(), rect.bottom(), score))
        else:
            for det in models.cnn_detector()(work, upsample):
                if det.confidence >= threshold:
                    r = det.rect
                    boxes.append(FaceBox(r.left(), r.top(), r.right(), r.bottom(), det.confidence))
        if boxes:
            # Detections far weaker than the best one are the detector's doubts (a fold in a
            # sleeve, a patch on a suit), not a second face; they must not win on size.
            best = max(b.score for b in boxes)
            boxes = [b for b in boxes if b.score >= best - self.doubt_margin]
        boxes = [
            FaceBox(b.left / factor_x, b.top / factor_y, b.right / factor_x, b.bottom / factor_y, b.score)
            for b in boxes
        ]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        image = as_rgb(image)
        factor = self.landmark_width / max(box.width, 1.0)
        if factor <= 1.5:
            return _points(models.shape_predictor_68()(image, _rect(box)))
        # Enlarge a region around the face, predict there, map back.
        h, w = image.shape[:2]
        margin = 0.6 * max(box.width, box.height)
        x0 = max(0, int(box.left - margin))
        y0 = max(0, int(box.top - margin))
        x1 = min(w, int(box.right + margin) + 1)
        y1 = min(h, int(box.bottom + margin) + 1)
        size = np.array([x1 - x0, y1 - y0], dtype=np.float32)
        new_size = np.maximum(np.round(size * factor), 1)
        patch = resize(image[y0:y1, x0:x1], int(new_size[0]), int(new_size[1]))
        fx, fy = new_size / size
        local = FaceBox(
            (box.left - x0) * fx, (box.top - y0) * fy, (box.right - x0) * fx, (box.bottom - y0) * fy
        )
        pts = _points(models.shape_predictor_68()(patch, _rect(local)))
        # A pixel centre at enlarged position p came from (p + 0.5) / f - 0.5 in the region.
        return (pts + 0.5) / (new_size / size) - 0.5 + np.array([x0, y0], dtype=np.float32)

    def embedding(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        image = as_rgb(image)
        shape = models.shape_predictor_5()(image, _rect(box))
        return np.asarray(models.face_encoder().compute_face_descriptor(image, shape), dtype=np.float32)


def _points(shape: Any) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


@cache
def get_analyzer(detector: DetectorName = "hog") -> DlibFaceAnalyzer:
    """The shared analyzer for a detector (the models behind it are loaded once per process)."""
    return DlibFaceAnalyzer(detector)


class NoFaceError(AnimaticaError):
    """No usable face where one is needed (the source photo, the first driving frame)."""


def select_face(faces: list[FaceBox], face_index: int | None, what: str = "the image") -> FaceBox:
    """The face to use: the largest one, or the ``face_index``-th counted from the left."""
    if not faces:
        raise NoFaceError(f"No face was found in {what}: use a photo with a clearly visible face.")
    if face_index is None:
        return faces[0]
    ordered = sorted(faces, key=lambda b: b.left)
    if not 0 <= face_index < len(ordered):
        raise AnimaticaError(
            f"Face index {face_index} asked for, but {what} has {len(ordered)} face(s): "
            f"use a face index from 0 to {len(ordered) - 1} (counted from the left)."
        )
    return ordered[face_index]
