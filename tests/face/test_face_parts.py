"""The pieces under the engine: models, analyzer, geometry, retargeting, filter, warp, mouth."""

import numpy as np
import pytest
import torch

from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face import models
from animatica.face.analyzer import FaceAnalyzer, FaceBox, NoFaceError, select_face
from animatica.face.filters import OneEuroFilter
from animatica.face.motion import Retargeter
from animatica.face.mouth import paint_mouth
from animatica.face.tracker import FaceTracker
from animatica.face.warp import MeshWarp


def test_model_files_are_found_and_missing_ones_named() -> None:
    assert models.model_path(models.SHAPE_68).stat().st_size > 1_000_000
    with pytest.raises(AnimaticaError, match="face-recognition-models"):
        models.model_path("no_such_model.dat")


def test_astronaut_face_and_landmarks(astronaut, analyzer, astronaut_landmarks) -> None:
    assert isinstance(analyzer, FaceAnalyzer)
    faces = analyzer.detect(astronaut)
    assert len(faces) == 1
    box = faces[0]
    assert 190 < box.center[0] < 250 and 100 < box.center[1] < 150
    pts = astronaut_landmarks
    assert pts.shape == (68, 2)
    assert pts[36, 0] < pts[45, 0] and pts[27, 1] < pts[33, 1] < pts[57, 1] < pts[8, 1]
    # Half-size photo: same landmarks at half the coordinates (sub-pixel thanks to enlargement).
    small = astronaut[::2, ::2].copy()
    half = analyzer.landmarks(small, analyzer.detect(small)[0])
    assert np.linalg.norm(half * 2 - pts, axis=1).mean() < 2.0


def test_embedding_separates_identity_from_noise(astronaut, analyzer, mover) -> None:
    box = analyzer.detect(astronaut)[0]
    e1 = analyzer.embedding(astronaut, box)
    turned = mover(astronaut, 8.0)
    e2 = analyzer.embedding(turned, analyzer.detect(turned)[0])
    assert e1.shape == (128,)
    assert np.linalg.norm(e1 - e2) < 0.3  # same person
    blank = np.full_like(astronaut, 128)
    assert np.linalg.norm(e1 - analyzer.embedding(blank, box)) > 0.4


def test_select_face() -> None:
    small, big = FaceBox(300, 0, 350, 50), FaceBox(0, 0, 100, 100)
    assert select_face([big, small], None) is big
    assert select_face([big, small], 1) is small
    with pytest.raises(NoFaceError, match=r"photo\.png"):
        select_face([], None, "photo.png")
    with pytest.raises(AnimaticaError, match="from 0 to 1"):
        select_face([big, small], 5)


def test_similarity_fit_recovers_a_known_motion() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (20, 2))
    m = g.similarity(0.3, 1.2, np.array([5.0, -7.0]))
    fitted = g.fit_similarity(pts, g.apply(m, pts))
    assert np.allclose(fitted, m)
    angle, scale, shift = g.decompose(g.compose(g.invert(m), m))
    assert abs(angle) < 1e-9 and scale == pytest.approx(1.0) and np.allclose(shift, 0)


def test_retargeting(astronaut_landmarks) -> None:
    src = astronaut_landmarks.astype(np.float64)
    # A different, smaller, shifted driving face.
    drv0 = g.apply(g.similarity(0.0, 0.5, np.array([20.0, 30.0])), src)
    r = Retargeter(src, drv0)
    same, head = r(drv0)
    assert np.allclose(same, src, atol=1e-6) and np.allclose(head, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    # Driving head turns 10° about its centre: the source turns 10° about its own.
    c = drv0[g.RIGID].mean(axis=0)
    turn = g.similarity(np.deg2rad(10), 1.0, np.zeros(2))
    turn[:, 2] = c - turn[:, :2] @ c
    _, head = r(g.apply(turn, drv0))
    assert np.rad2deg(g.decompose(head)[0]) == pytest.approx(10.0, abs=1e-6)
    # Driving eyes close: the source eyes close whatever their size; scale 0 keeps the source still.
    closed = drv0.copy()
    for upper, lower in g.EYE_PAIRS:
        closed[upper] = closed[lower]
    target, _ = r(closed)
    for upper, lower in g.EYE_PAIRS:
        assert np.linalg.norm(target[upper] - target[lower]) < 0.5
    assert np.linalg.norm(src[37] - src[41]) > 4
    still, _ = Retargeter(src, drv0, scale=0.0)(closed)
    assert np.allclose(still, src, atol=1e-6)


def test_one_euro_filter_smooths_noise_but_follows_motion() -> None:
    rng = np.random.default_rng(2)
    f = OneEuroFilter(rate=30, min_cutoff=1.0, beta=8.0)
    noisy = [f(np.array([rng.normal(0, 0.01)])) for _ in range(60)]
    assert np.std(np.diff(np.array(noisy[20:]).ravel())) < 0.3 * 0.01 * np.sqrt(2)
    f.reset()
    ramp = [f(np.array([0.05 * i]))[0] for i in range(30)]
    assert abs(ramp[-1] - 0.05 * 29) < 0.05  # lags by at most about a frame's worth


def test_mesh_warp_identity_and_translation() -> None:
    h, w = 60, 80
    image = np.zeros((h, w, 3), dtype=np.float32)
    image[20:30, 30:40] = 255
    border = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]])
    inner = np.array([[25.0, 15.0], [45.0, 15.0], [25.0, 35.0], [45.0, 35.0], [35.0, 25.0]])
    warp = MeshWarp(np.vstack([inner, border]), (h, w))
    tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
    same = warp.warp(tensor, np.vstack([inner, border]))[0].permute(1, 2, 0).numpy()
    assert np.abs(same - image).max() < 1e-3
    moved = warp.warp(tensor, np.vstack([inner + np.array([3.0, 2.0]), border]))[0, 0].numpy()
    ys, xs = np.nonzero(moved > 128)
    assert (ys.mean(), xs.mean()) == pytest.approx((24.5 + 2, 34.5 + 3), abs=0.3)
    assert moved[0].max() == 0 and moved[:, 0].max() == 0  # the border does not move


def test_paint_mouth_only_inside_the_opening() -> None:
    region = np.full((60, 60, 3), 200.0)
    inner = np.array([[10, 20], [20, 15], [30, 14], [40, 15], [50, 20], [40, 38], [30, 40], [20, 38]], float)
    paint_mouth(region, inner, np.array([60.0, 40, 40]), np.array([220.0, 215, 205]), 5.0, 1.0)
    assert region[30, 30].max() < 80  # cavity
    assert region[16, 30].min() > 190  # teeth under the upper lip
    assert np.all(region[:10] == 200) and np.all(region[45:] == 200) and np.all(region[:, :8] == 200)
    untouched = np.full((60, 60, 3), 200.0)
    paint_mouth(untouched, inner, np.array([60.0, 40, 40]), np.array([220.0, 215, 205]), 5.0, 0.0)
    assert np.all(untouched == 200)


def test_tracker_loses_and_finds_the_face(astronaut, analyzer, mover) -> None:
    tracker = FaceTracker(analyzer)
    blank = np.full_like(astronaut, 80)
    results = [tracker(f) for f in (astronaut, mover(astronaut, shift=(6.0, 0.0)), blank, astronaut)]
    assert results[2] is None
    assert all(r is not None for r in results[:2] + results[3:])
    assert results[1][30, 0] - results[0][30, 0] == pytest.approx(6.0, abs=1.0)
