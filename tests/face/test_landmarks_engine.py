"""The landmarks engine on real photos moved by known amounts: the animated face must follow."""

import numpy as np
import pytest

from animatica.engines.base import Engine
from animatica.engines.landmarks import LandmarksEngine
from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import NoFaceError

TOLERANCE = 2.5  # pixels, mean over the 68 points


def detect_points(analyzer, image: np.ndarray) -> np.ndarray:
    faces = analyzer.detect(image, min_score=-0.5)
    assert faces, "no face found in the animated frame"
    return analyzer.landmarks(image, faces[0])


def test_is_an_engine() -> None:
    engine = LandmarksEngine.load()
    assert isinstance(engine, Engine)
    assert engine.name == "landmarks"
    assert engine.frame_size is None


def test_rigid_head_motion_is_followed(astronaut, analyzer, astronaut_landmarks, mover) -> None:
    motions = [
        (0.0, 1.0, (0.0, 0.0)),
        (8.0, 1.0, (0.0, 0.0)),
        (-12.0, 1.0, (6.0, -4.0)),
        (0.0, 1.08, (-5.0, 3.0)),
    ]
    driving = np.stack([mover(astronaut, a, s, d) for a, s, d in motions])
    engine = LandmarksEngine.load(smoothing=0.0)
    state = engine.prepare(astronaut, driving[0])
    out = engine.animate(state, driving)
    assert out.shape == driving.shape and out.dtype == np.uint8
    centre = np.array([222.0, 125.0])
    for (angle, scale, shift), frame in zip(motions, out, strict=True):
        m = g.similarity(np.deg2rad(angle), scale, np.zeros(2))
        expected = (astronaut_landmarks - centre) @ m[:, :2].T + centre + np.array(shift)
        error = np.linalg.norm(detect_points(analyzer, frame) - expected, axis=1).mean()
        assert error < TOLERANCE, (angle, scale, shift, error)
    # A rotation must actually move the face (guards against an engine that returns the source).
    assert np.linalg.norm(detect_points(analyzer, out[2]) - astronaut_landmarks, axis=1).mean() > 8


def test_motion_is_rescaled_to_the_source_face(astronaut, analyzer, astronaut_landmarks, mover) -> None:
    """Driving at half the size of the source: the source moves twice as many pixels."""
    small = astronaut[::2, ::2].copy()
    centre_small = (111.0, 62.5)
    driving = np.stack([small, mover(small, 10.0, 1.0, (4.0, 2.0), centre=centre_small)])
    engine = LandmarksEngine.load(smoothing=0.0)
    state = engine.prepare(astronaut, driving[0])
    out = engine.animate(state, driving)
    assert out.shape == (2, *astronaut.shape)
    centre = np.array(centre_small) * 2 + 0.5
    m = g.similarity(np.deg2rad(10.0), 1.0, np.zeros(2))
    expected = (astronaut_landmarks - centre) @ m[:, :2].T + centre + np.array([8.0, 4.0])
    error = np.linalg.norm(detect_points(analyzer, out[1]) - expected, axis=1).mean()
    assert error < 2 * TOLERANCE, error


def test_mouth_opens_and_is_painted(astronaut, analyzer, astronaut_landmarks, mouth_opener) -> None:
    amount = 12.0
    driving = np.stack([astronaut, mouth_opener(astronaut, astronaut_landmarks, amount)])
    engine = LandmarksEngine.load(smoothing=0.0)
    state = engine.prepare(astronaut, driving[0])
    out = engine.animate(state, driving)
    got = detect_points(analyzer, out[1])
    real = detect_points(analyzer, driving[1])
    # Chin and lower lip go down as in the driving frame; the eyes and nose stay.
    for idx in (8, 57):
        assert got[idx, 1] - astronaut_landmarks[idx, 1] == pytest.approx(
            real[idx, 1] - astronaut_landmarks[idx, 1], abs=2.5
        )
    assert got[57, 1] - astronaut_landmarks[57, 1] > 8
    assert np.abs(got[27:48] - astronaut_landmarks[27:48]).max() < 2.0
    # The opening is dark (painted cavity), not stretched lips or teeth.
    inner = got[[62, 66]].mean(axis=0).round().astype(int)
    assert out[1][inner[1] + 2, inner[0]].mean() < 100


def test_background_is_untouched_and_output_has_source_size(astronaut, mover) -> None:
    canvas = np.zeros((700, 1000, 3), dtype=np.uint8)
    canvas[:, :] = np.linspace(30, 220, 1000, dtype=np.uint8)[None, :, None]
    canvas[100:612, 300:812] = astronaut
    driving = np.stack([astronaut[::2, ::2], mover(astronaut[::2, ::2], 10.0, centre=(111, 62))])
    engine = LandmarksEngine.load(smoothing=0.0)
    state = engine.prepare(canvas, driving[0])
    out = engine.animate(state, driving)
    assert out.shape == (2, 700, 1000, 3)
    y0, y1, x0, x1 = state.region
    outside = np.ones((700, 1000), dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert outside.sum() > 0.5 * outside.size
    assert np.array_equal(out[1][outside], canvas[outside])
    assert np.abs(out[1].astype(int) - canvas).max() > 50  # the face did move
    # The first frame is the initial pose: the photo comes back (up to resampling).
    assert np.abs(out[0].astype(int) - canvas).mean() < 0.5


def test_frames_without_a_face_hold_the_last_pose(astronaut, mover) -> None:
    blank = np.full_like(astronaut, 128)
    turned = mover(astronaut, 10.0)
    driving = np.stack([astronaut, turned, blank, blank, turned])
    engine = LandmarksEngine.load(smoothing=0.0)
    state = engine.prepare(astronaut, astronaut)
    out = engine.animate(state, driving)
    assert state.frames_without_face == 2
    assert state.frames == 5
    assert np.array_equal(out[2], out[1])
    assert np.array_equal(out[3], out[1])
    assert np.abs(out[4].astype(int) - out[1]).mean() < 0.5


def test_no_face_in_source_names_the_file(astronaut) -> None:
    engine = LandmarksEngine.load(source_name="wall.jpg")
    with pytest.raises(NoFaceError, match=r"wall\.jpg"):
        engine.prepare(np.full((300, 300, 3), 90, dtype=np.uint8), astronaut)


def test_no_face_in_first_driving_frame(astronaut) -> None:
    engine = LandmarksEngine.load()
    with pytest.raises(NoFaceError, match="first driving frame"):
        engine.prepare(astronaut, np.full((300, 300, 3), 90, dtype=np.uint8))


def test_face_index_chooses_the_face(astronaut, analyzer) -> None:
    """Two faces side by side: the larger on the right. Default = largest; index counts from the left."""
    face = astronaut[40:230, 130:320]
    left = face[::2, ::2]
    picture = np.full((300, 600, 3), 200, dtype=np.uint8)
    picture[60 : 60 + left.shape[0], 40 : 40 + left.shape[1]] = left
    picture[50 : 50 + face.shape[0], 300 : 300 + face.shape[1]] = face
    assert len(analyzer.detect(picture)) == 2
    regions = {}
    for index in (None, 0, 1):
        state = LandmarksEngine.load(face_index=index).prepare(picture, astronaut)
        regions[index] = state.region
    assert regions[None] == regions[1]
    assert regions[0][3] < 300 < regions[1][2] + 150  # left face's region ends before the right face
    with pytest.raises(AnimaticaError, match="Face index 2"):
        LandmarksEngine.load(face_index=2).prepare(picture, astronaut)


def test_smoothing_removes_jitter(astronaut, analyzer, astronaut_landmarks) -> None:
    """A still face with landmark noise: the smoothed pose moves far less than the raw one."""
    rng = np.random.default_rng(0)
    engine = LandmarksEngine.load(smoothing=0.5)
    state = engine.prepare(astronaut, astronaut)
    assert state.smoother is not None
    raw, smooth = [], []
    for _ in range(40):
        noisy = astronaut_landmarks + rng.normal(0, 1.0, astronaut_landmarks.shape)
        raw.append(noisy)
        smooth.append(state.smoother(noisy / state.driving_size) * state.driving_size)
    jitter = lambda seq: np.abs(np.diff(np.array(seq[10:]), axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < 0.4 * jitter(raw)


def test_bad_options() -> None:
    with pytest.raises(AnimaticaError):
        LandmarksEngine.load(smoothing=2.0)
    with pytest.raises(AnimaticaError):
        LandmarksEngine.load(detector="sonar")
