"""ControlNet conditions drawn from the face in a reference photo.

The face toolkit already finds a face and places its 68 landmarks, so a reference photo becomes a
condition picture without another model: ``face`` draws the landmark contours (jaw, brows, nose, eyes,
lips) in white on black, as face-landmark ControlNets are trained on; ``pose`` draws the head of an
OpenPose skeleton (nose, neck, eyes, ears) in OpenPose's colours, which pose ControlNets read. The
drawing keeps the photo's framing and is then fitted to the picture being drawn like any other input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from animatica.face import geometry
from animatica.face.analyzer import get_analyzer, select_face

# Landmark runs drawn as connected lines; the eyes and lips are closed loops.
_OPEN_RUNS = (geometry.JAW, geometry.BROWS[:5], geometry.BROWS[5:], geometry.NOSE[:4], geometry.NOSE[4:])
_LOOPS = (geometry.RIGHT_EYE, geometry.LEFT_EYE, geometry.OUTER_LIPS, geometry.INNER_LIPS)

# OpenPose's keypoint colours (RGB) for the head keypoints used here, by OpenPose index.
_POSE_COLOURS = {
    0: (255, 0, 0),  # nose
    1: (255, 85, 0),  # neck
    14: (170, 0, 255),  # right eye
    15: (255, 0, 255),  # left eye
    16: (255, 0, 170),  # right ear
    17: (255, 0, 85),  # left ear
}
# Limbs between keypoints, each in the colour OpenPose gives that limb.
_POSE_LIMBS = (
    ((1, 0), (0, 0, 153)),
    ((0, 14), (51, 0, 153)),
    ((14, 16), (102, 0, 153)),
    ((0, 15), (153, 0, 153)),
    ((15, 17), (153, 0, 102)),
)


def face_landmarks(photo: np.ndarray) -> np.ndarray:
    """The 68 landmarks of the largest face in ``photo`` (``NoFaceError`` when there is none)."""
    analyzer = get_analyzer("hog")
    box = select_face(analyzer.detect(photo, thorough=True), None, "the reference photo")
    return analyzer.landmarks(photo, box)


def draw_condition(points: np.ndarray, size: tuple[int, int], kind: str = "face") -> Image.Image:
    """The condition picture of ``kind`` for ``points`` (68 x 2, pixels) on a black (W, H) canvas."""
    width, height = size
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    # Lines about as thick relative to the face as in the drawings these ControlNets were trained on.
    thickness = max(1, round(geometry.face_size(points) / 60))
    if kind == "face":
        for run in _OPEN_RUNS:
            draw.line([tuple(p) for p in points[run].tolist()], fill=(255, 255, 255), width=thickness)
        for loop in _LOOPS:
            ring = points[loop].tolist()
            draw.line([tuple(p) for p in ring + ring[:1]], fill=(255, 255, 255), width=thickness)
        for x, y in points.tolist():
            draw.ellipse((x - thickness, y - thickness, x + thickness, y + thickness), fill=(255, 255, 255))
        return canvas
    if kind == "pose":
        keypoints = pose_keypoints(points)
        for (a, b), colour in _POSE_LIMBS:
            draw.line([tuple(keypoints[a]), tuple(keypoints[b])], fill=colour, width=2 * thickness + 1)
        radius = 2 * thickness
        for index, (x, y) in keypoints.items():
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_POSE_COLOURS[index])
        return canvas
    raise ValueError(f"unknown condition {kind!r}")


def pose_keypoints(points: np.ndarray) -> dict[int, tuple[float, float]]:
    """OpenPose head keypoints (by OpenPose index) estimated from the 68 face landmarks.

    The ears sit at the top ends of the jaw line; the neck is below the chin by half the nose-to-chin
    distance, along the face's downward axis.
    """
    nose = points[30]
    chin = points[8]
    neck = chin + 0.5 * np.linalg.norm(chin - nose) * geometry.down_axis(points)
    found = {
        0: nose,
        1: neck,
        14: points[geometry.RIGHT_EYE].mean(axis=0),
        15: points[geometry.LEFT_EYE].mean(axis=0),
        16: points[0],
        17: points[16],
    }
    return {index: (float(p[0]), float(p[1])) for index, p in found.items()}


def condition_from_photo(photo: np.ndarray, kind: str = "face") -> Image.Image:
    """The condition picture of the face in ``photo``, at the photo's size."""
    height, width = photo.shape[:2]
    return draw_condition(face_landmarks(photo), (width, height), kind)
