"""Crop, best-frame search and face metrics on clips built from a real photo with known motions."""

import numpy as np
import pytest

from animatica.errors import MediaError
from animatica.face.analyzer import NoFaceError
from animatica.face.best_frame import find_best_frame
from animatica.face.crop import (
    crop_box,
    crop_frames_iter,
    crop_image,
    crop_image_file,
    crop_video,
    track_boxes,
)
from animatica.face.metrics import face_metrics
from animatica.media.reader import iter_frames, read_image
from animatica.media.writer import open_writer


@pytest.fixture(scope="module")
def drifting(astronaut, mover) -> list[np.ndarray]:
    """The face drifts 2 px right per frame, on a 320x320 frame cut from the photo."""
    frame = astronaut[:320, 60:380]
    return [mover(frame, shift=(2.0 * i, 0.0), centre=(162, 125)) for i in range(16)]


def test_best_frame_matches_pose_not_position(astronaut, mover, astronaut_landmarks, mouth_opener) -> None:
    blank = np.full_like(astronaut, 100)
    clip = [
        mover(astronaut, 14.0),
        mouth_opener(astronaut, astronaut_landmarks, 10.0),
        blank,
        mover(astronaut, -9.0, 1.0, (4.0, 0.0)),
        mover(astronaut, 0.0, 0.85, (25.0, 12.0)),  # the source's pose, smaller and elsewhere
        mover(astronaut, 6.0),
    ]
    assert find_best_frame(astronaut, iter(clip)) == 4
    assert find_best_frame(astronaut, [blank, blank]) == 0


def test_crop_boxes_follow_the_face_smoothly(drifting, analyzer) -> None:
    boxes = track_boxes(drifting, every=3, smooth=2.0)
    assert boxes.shape == (16, 3)
    centres = []
    for frame, box in zip(drifting, boxes, strict=True):
        expected = crop_box(analyzer.landmarks(frame, analyzer.detect(frame)[0]))
        centres.append(expected[0])
        assert np.abs(box[:2] - expected[:2]).max() < 4.0
        assert box[2] == pytest.approx(expected[2], rel=0.08)
    # The crop glides: steady speed, no jumps (the face moves 2 px per frame).
    speed = np.diff(boxes[:, 0])
    assert np.abs(speed - 2.0).max() < 1.0
    assert np.abs(np.diff(boxes[:, 2])).max() < 1.0


def test_cropped_frames_show_a_centred_face(drifting, analyzer) -> None:
    crops = list(crop_frames_iter(lambda: iter(drifting), 128, every=4))
    assert len(crops) == len(drifting)
    for crop in crops[::5]:
        assert crop.shape == (128, 128, 3)
        points = analyzer.landmarks(crop, analyzer.detect(crop)[0])
        centre = (points.min(axis=0) + points.max(axis=0)) / 2
        # Offset (0, -0.1) moves the crop up, so the face sits 0.1 of the side below the middle.
        assert np.abs(centre - [64, 64 + 0.1 * 128]).max() < 6


def test_crop_video_and_image_files(tmp_path, drifting, astronaut) -> None:
    video = tmp_path / "drive.mp4"
    with open_writer(video, 25) as writer:
        for frame in drifting:
            writer.write(frame)
    out = tmp_path / "crop.mp4"
    assert crop_video(video, out, 96) == len(drifting)
    frames = list(iter_frames(out))
    assert len(frames) == len(drifting) and frames[0].shape == (96, 96, 3)

    photo = tmp_path / "face.png"
    from PIL import Image

    Image.fromarray(astronaut).save(photo)
    crop_image_file(photo, tmp_path / "face_crop.jpg", 200)
    assert read_image(tmp_path / "face_crop.jpg").shape == (200, 200, 3)
    with pytest.raises(MediaError):
        crop_image_file(photo, tmp_path / "face_crop.nope", 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "crop.mp4",
        "drive.mp4",
        "face.png",
        "face_crop.jpg",
    ]


def test_crop_without_a_face(astronaut) -> None:
    blank = np.full((200, 200, 3), 60, dtype=np.uint8)
    with pytest.raises(NoFaceError, match="driving video"):
        track_boxes([blank, blank])
    with pytest.raises(NoFaceError):
        crop_image(blank)
    assert crop_image(astronaut, 64).shape == (64, 64, 3)


def test_metrics_identical_and_shifted(astronaut, mover) -> None:
    clip = [astronaut, mover(astronaut, 8.0)]
    same = face_metrics(clip, clip)
    assert same.akd == 0 and same.mkr == 0 and same.aed is not None and same.aed < 1e-6
    assert same.frames == 2 and same.matched == 2

    shifted = [mover(f, shift=(3.0, 4.0), centre=(0, 0)) for f in clip]
    moved = face_metrics(shifted, clip, with_identity=False)
    assert moved.akd == pytest.approx(5.0, abs=0.8)
    assert moved.aed is None

    blank = np.full_like(astronaut, 90)
    missing = face_metrics([clip[0], blank, blank], [clip[0], clip[1], blank], with_identity=False)
    assert missing.mkr == pytest.approx(0.5)
    assert missing.matched == 1


def test_crop_sizes_and_path_input(tmp_path, drifting, astronaut) -> None:
    video = tmp_path / "drive.mp4"
    with open_writer(video, 25) as writer:
        for frame in drifting[:6]:
            writer.write(frame)
    own = list(crop_frames_iter(video, None, every=2))
    assert len(own) == 6 and len({f.shape for f in own}) == 1 and own[0].shape[0] > 100
    assert crop_image(astronaut, (64, 80)).shape == (64, 80, 3)
    assert crop_image(astronaut, None).shape[0] == crop_image(astronaut, None).shape[1] > 100
