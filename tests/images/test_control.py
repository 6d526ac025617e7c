"""ControlNet condition pictures drawn from the 68 landmarks of a real photo."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from animatica.face.analyzer import NoFaceError
from animatica.images.control import condition_from_photo, draw_condition, face_landmarks, pose_keypoints


@pytest.fixture(scope="module")
def astronaut_points() -> np.ndarray:
    return face_landmarks(data.astronaut())


def test_face_drawing_traces_the_landmarks(astronaut_points) -> None:
    drawing = np.asarray(draw_condition(astronaut_points, (512, 512), "face"))
    lit = drawing.max(axis=2) > 0
    assert set(np.unique(drawing)) <= {0, 255}  # white on black, as face-landmark ControlNets read
    for x, y in np.rint(astronaut_points).astype(int):
        assert lit[y, x]
    # Only the face is drawn: nothing far outside the landmarks' box.
    x0, y0 = astronaut_points.min(axis=0).astype(int) - 10
    x1, y1 = astronaut_points.max(axis=0).astype(int) + 10
    outside = lit.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()
    assert 0.005 < lit.mean() < 0.1


def test_pose_drawing_puts_openpose_keypoints_where_the_face_is(astronaut_points) -> None:
    keypoints = pose_keypoints(astronaut_points)
    nose, neck = np.array(keypoints[0]), np.array(keypoints[1])
    assert np.allclose(nose, astronaut_points[30])
    assert neck[1] > astronaut_points[8][1]  # below the chin
    assert (
        keypoints[14][0] < keypoints[15][0] and keypoints[16][0] < keypoints[17][0]
    )  # right side on the left
    drawing = np.asarray(condition_from_photo(data.astronaut(), "pose"))
    x, y = np.rint(nose).astype(int)
    assert tuple(drawing[y, x]) == (255, 0, 0)  # OpenPose's nose colour
    ex, ey = np.rint(keypoints[15]).astype(int)
    assert tuple(drawing[ey, ex]) == (255, 0, 255)


def test_a_photo_without_a_face_is_refused() -> None:
    with pytest.raises(NoFaceError, match="reference photo"):
        condition_from_photo(np.full((200, 200, 3), 128, np.uint8), "face")
