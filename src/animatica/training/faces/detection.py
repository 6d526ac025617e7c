"""How well the face toolkit sees the synthetic faces: detection rate and landmark error.

The error is the mean distance between the predictor's 68 points and the renderer's own, in
percent of the inter-ocular distance (outer eye corners, points 36 and 45), the usual 300-W
normalisation; it is measured on the frames where a face was found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from animatica.face.analyzer import FaceAnalyzer, get_analyzer


@dataclass(frozen=True)
class DetectionStats:
    frames: int
    detected: int
    landmark_error: float  # mean, % of inter-ocular distance (nan without detections)
    landmark_error_median: float

    @property
    def rate(self) -> float:
        return self.detected / max(self.frames, 1)

    def as_dict(self) -> dict[str, float]:
        return {
            "frames": self.frames,
            "detected": self.detected,
            "detection_rate": round(self.rate, 4),
            "landmark_error_iod_pct": round(self.landmark_error, 2),
            "landmark_error_iod_pct_median": round(self.landmark_error_median, 2),
        }


def landmark_error(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean point distance in % of the true inter-ocular distance."""
    iod = float(np.linalg.norm(truth[45] - truth[36]))
    return 100.0 * float(np.mean(np.linalg.norm(found - truth, axis=1))) / max(iod, 1e-9)


def measure(
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    analyzer: FaceAnalyzer | None = None,
    thorough: bool = False,
    upscale: int = 1,
) -> DetectionStats:
    """Detect and place landmarks on each (image, true landmarks) pair.

    ``upscale`` enlarges each image first (bicubic) for frames smaller
    than the detector's window; the landmarks are compared in the original pixels.
    """
    from PIL import Image

    analyzer = analyzer or get_analyzer("hog")
    errors: list[float] = []
    count = 0
    for image, truth in frames:
        count += 1
        work = image
        if upscale > 1:
            h, w = image.shape[:2]
            work = np.asarray(
                Image.fromarray(image).resize((w * upscale, h * upscale), Image.Resampling.BICUBIC)
            )
        boxes = analyzer.detect(work, thorough=thorough)
        if not boxes:
            continue
        points = analyzer.landmarks(work, boxes[0])
        if upscale > 1:
            points = (points + 0.5) / upscale - 0.5
        errors.append(landmark_error(points, truth))
    mean = float(np.mean(errors)) if errors else float("nan")
    median = float(np.median(errors)) if errors else float("nan")
    return DetectionStats(count, len(errors), mean, median)
