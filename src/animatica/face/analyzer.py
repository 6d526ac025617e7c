"""One small interface over a face model backend: detect faces, place landmarks, embed identity.

The rest of Animatica sees faces only through ``FaceAnalyzer``. The shipped backend is dlib
(``DlibFaceAnalyzer``): its wheels are self-contained, its pretrained files come in
``face-recognition-models``, its HOG detector runs in milliseconds on a CPU and its 68-point
predictor in about as long. A mediapipe face-mesh backend would implement the same three methods
(reducing its 468 points to the 68-point layout in ``geometry.py``).

The HOG detector only knows upright, undistorted faces of at least 80 pixels, so a face that a
person sees at once can still be missed: a small face in a big frame, a portrait squashed into a
16:9 frame, a face turned or lit in a way HOG was not trained on. Where a face *must* be found
(the source photo, the first driving frame) callers ask for a thorough search, which tries
further scans in order of cost until one finds a face (``SCANS``); every box says which scan found
it, so the result can tell the user, and a tracker can keep looking the same way.
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from animatica.errors import AnimaticaError
from animatica.face import models

DetectorName = Literal["hog", "cnn"]

# The scans a thorough search tries, cheapest first; a box's ``detector`` is one of these.
#  - "hog": the quick scan, on the image shrunk to a bounded size (enlarged once when small);
#  - "hog-upsampled": HOG on the image enlarged as far as a pixel budget allows, for small faces;
#  - "hog-aspect": HOG on the image stretched back from a common wrong aspect ratio (4:3 or 1:1
#    content shown as 16:9, or the reverse), for squashed or stretched pictures;
#  - "cnn": dlib's MMOD CNN detector, on a bounded image (it costs seconds on a CPU), for faces
#    HOG does not know (turned, tilted, unusually lit).
SCANS = ("hog", "hog-upsampled", "hog-aspect", "cnn")

_SCAN_WORDS = {
    "hog": "the HOG face detector",
    "hog-upsampled": "the HOG face detector on an enlarged copy of the picture (the face is small)",
    "hog-aspect": "the HOG face detector after undoing a stretched aspect ratio (the picture is squashed)",
    "cnn": "the CNN face detector (the HOG detector did not see it)",
}

_WINDOW = 80  # the smallest face (pixels) dlib's detectors find without upsampling


def describe_scan(scan: str) -> str:
    """Words for a user: which detector found a face (``FaceBox.detector``)."""
    return _SCAN_WORDS.get(scan, f"the {scan} face detector")


@dataclass(frozen=True)
class FaceBox:
    """A detected face, in pixel coordinates of the image it was found in."""

    left: float
    top: float
    right: float
    bottom: float
    score: float = 0.0
    # Which scan found the face (one of ``SCANS``). Scores are only comparable within one scan.
    detector: str = "hog"
    # How many times wider than tall the picture shows things, as far as the scan that found
    # the face could tell: the stretch it undid (1 when it undid none).
    squash: float = 1.0

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
        return replace(
            self,
            left=self.left * factor,
            top=self.top * factor,
            right=self.right * factor,
            bottom=self.bottom * factor,
        )

    def shifted(self, dx: float, dy: float) -> "FaceBox":
        return replace(
            self, left=self.left + dx, top=self.top + dy, right=self.right + dx, bottom=self.bottom + dy
        )

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
        self,
        image: np.ndarray,
        *,
        min_face: float | None = None,
        min_score: float | None = None,
        like: FaceBox | None = None,
        thorough: bool = False,
    ) -> list[FaceBox]:
        """All faces in an RGB uint8 image, largest first.

        ``min_face`` (pixels) is the smallest face width worth finding; a tracker that knows
        the face size passes it so the backend can scan a smaller image. ``min_score`` overrides
        the backend's confidence threshold (a tracker looking where a face just was can be
        more lenient than a search of a whole photo). ``like`` is a face found earlier (in a
        previous frame): the scan then looks the way that face was found (same detector, same
        correction of a squashed picture), so a face that only a fallback scan sees stays seen.
        ``thorough`` is for where a face must be found: when the quick scan finds none, the
        backend's slower scans are tried too, and each box's ``detector`` says which one found it.
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

    A thorough search goes on, when the quick scan finds nothing, with (see ``SCANS``): HOG on
    the image enlarged to at most ``upsample_pixels`` pixels (and at most 4x), which finds faces
    down to about 20 px in a small picture and 40 px in a 1080p frame; HOG on the image with its
    width rescaled by each of ``1 / aspects`` (the aspect that scores best wins); the CNN on the
    image resized to ``cnn_side`` (enlarged at most 2x: smaller faces are HOG's), which bounds its
    cost to a few seconds. Fallback scans keep only
    detections scoring at least ``fallback_score`` (HOG) or ``cnn_score`` (CNN): they look at many
    more candidates than the quick scan, and a picture without a face must still be found to
    have none.
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
        upsample_pixels: int = 3840 * 2160,
        aspects: tuple[float, ...] = (4 / 3, 16 / 9, 3 / 4, 9 / 16),
        cnn_side: int = 512,
        fallback_score: float = 0.3,
        cnn_score: float = 0.5,
    ) -> None:
        if detector not in ("hog", "cnn"):
            raise AnimaticaError(f"Unknown face detector {detector!r}: use 'hog' or 'cnn'.")
        self.detector = detector
        self.min_score = min_score
        self.max_side = max_side
        self.upsample_below = upsample_below
        self.landmark_width = landmark_width
        self.doubt_margin = doubt_margin
        self.upsample_pixels = upsample_pixels
        self.aspects = aspects
        self.cnn_side = cnn_side
        self.fallback_score = fallback_score
        self.cnn_score = cnn_score

    def detect(
        self,
        image: np.ndarray,
        *,
        min_face: float | None = None,
        min_score: float | None = None,
        like: FaceBox | None = None,
        thorough: bool = False,
    ) -> list[FaceBox]:
        image = as_rgb(image)
        threshold = self.min_score if min_score is None else min_score
        if like is not None:
            found = self._like(image, like, min_face, threshold)
        else:
            found = self._quick(image, min_face, threshold, self.detector, 1.0, self.detector)
        if found or not thorough:
            return found
        for found in self._fallbacks(image):
            if found:
                return found
        return []

    def _quick(
        self, image: np.ndarray, min_face: float | None, threshold: float, kind: str, aspect: float, name: str
    ) -> list[FaceBox]:
        """One scan at the bounded size; ``aspect`` (a face's width over height in this image)
        rescales the width first so that a squashed face is scanned square."""
        h, w = image.shape[:2]
        side = max(h, w / aspect)
        if min_face is None:
            factor = min(1.0, self.max_side / side)
            upsample = 1 if side * factor < self.upsample_below else 0
        else:
            # Scan at the scale where the smallest wanted face fills the detector's window.
            factor = min(_WINDOW / max(min_face / aspect, 1.0), self.max_side / side)
            upsample = 0
        return self._scan(image, kind, factor / aspect, factor, upsample, threshold, name)

    def _upsampled(self, image: np.ndarray, threshold: float) -> list[FaceBox]:
        h, w = image.shape[:2]
        scale = min(4.0, math.sqrt(self.upsample_pixels / (h * w)))
        return self._scan(image, "hog", scale, scale, 0, threshold, "hog-upsampled")

    def _fallbacks(self, image: np.ndarray) -> Iterator[list[FaceBox]]:
        """The scans after the quick one, cheapest first, each run only if the ones before found nothing."""
        h, w = image.shape[:2]
        quick = min(1.0, self.max_side / max(h, w))
        if max(h, w) * quick < self.upsample_below:
            quick *= 2  # the quick scan's upsampling
        if min(4.0, math.sqrt(self.upsample_pixels / (h * w))) > 1.25 * quick:
            yield self._upsampled(image, self.fallback_score)
        # Every aspect is scanned (they cost little) and the clearest face wins: a picture squashed
        # from 1:1 to 16:9 also shows a weak face when stretched back only as far as 4:3.
        candidates = [
            self._quick(image, None, self.fallback_score, "hog", aspect, "hog-aspect")
            for aspect in self.aspects
        ]
        yield max(candidates, key=lambda boxes: max((b.score for b in boxes), default=-np.inf))
        if self.detector != "cnn":
            scale = self._cnn_scale(image)
            yield self._scan(image, "cnn", scale, scale, 0, self.cnn_score, "cnn")

    def _cnn_scale(self, image: np.ndarray) -> float:
        return min(2.0, self.cnn_side / max(image.shape[:2]))

    def _like(
        self, image: np.ndarray, like: FaceBox, min_face: float | None, threshold: float
    ) -> list[FaceBox]:
        """One scan the way ``like`` was found: same detector, same squash undone, as enlarged."""
        kind = "cnn" if like.detector == "cnn" else "hog"
        aspect = like.squash if like.squash > 0 else 1.0
        if min_face is None and like.detector == "hog-upsampled":
            return self._upsampled(image, threshold)
        if min_face is None and kind == "cnn":
            scale = self._cnn_scale(image)
            return self._scan(image, "cnn", scale, scale, 0, threshold, "cnn")
        return self._quick(image, min_face, threshold, kind, aspect, like.detector)

    def _scan(
        self,
        image: np.ndarray,
        kind: str,
        scale_x: float,
        scale_y: float,
        upsample: int,
        threshold: float,
        name: str,
    ) -> list[FaceBox]:
        """One detector run on the image resized by (``scale_x``, ``scale_y``); boxes in the
        image's own pixels, tagged ``name``, largest first."""
        h, w = image.shape[:2]
        if abs(scale_x - 1.0) > 1e-3 or abs(scale_y - 1.0) > 1e-3:
            work = resize(image, max(1, round(w * scale_x)), max(1, round(h * scale_y)))
            factor_x, factor_y = work.shape[1] / w, work.shape[0] / h
        else:
            work, factor_x, factor_y = image, 1.0, 1.0
        boxes: list[FaceBox] = []
        if kind == "hog":
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
        squash = scale_y / scale_x
        boxes = [
            FaceBox(
                b.left / factor_x,
                b.top / factor_y,
                b.right / factor_x,
                b.bottom / factor_y,
                b.score,
                name,
                squash,
            )
            for b in boxes
        ]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def landmarks(self, image: np.ndarray, box: FaceBox) -> np.ndarray:
        image = as_rgb(image)
        factor = self.landmark_width / max(box.width, 1.0)
        if box.squash == 1.0 and factor <= 1.5:
            return _points(models.shape_predictor_68()(image, _rect(box)))
        # Resample a region around the face (enlarged when small; a squashed face, found by
        # scanning the picture stretched back, is stretched back the same way so the predictor
        # sees the face shape it was trained on), predict there, map back.
        scale = np.array([factor, factor * box.squash])
        h, w = image.shape[:2]
        margin = 0.6 * max(box.width, box.height)
        x0 = max(0, int(box.left - margin))
        y0 = max(0, int(box.top - margin))
        x1 = min(w, int(box.right + margin) + 1)
        y1 = min(h, int(box.bottom + margin) + 1)
        size = np.array([x1 - x0, y1 - y0], dtype=np.float32)
        new_size = np.maximum(np.round(size * scale), 1)
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
