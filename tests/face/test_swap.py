"""The face-swap maths: alignment, colour, masks, blending, and which faces are chosen."""

import numpy as np
import pytest
from scipy import ndimage
from tests.face.swap_faces import astronaut_face, other_person, side_by_side

from animatica.errors import AnimaticaError
from animatica.face import geometry as g
from animatica.face.analyzer import NoFaceError
from animatica.face.colour import to_lab, transfer_colour, weighted_stats
from animatica.face.swap import SwapOptions, face_masks, face_region, prepare_source, sampling_map, swap_face
from animatica.face.tracks import FaceChoice, FaceTracks, reference_embedding


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return other_person()


@pytest.fixture(scope="module")
def source(photo, analyzer):
    return prepare_source(photo, analyzer)


def test_alignment_lands_every_photo_landmark_on_its_target_landmark(
    source, astronaut, astronaut_landmarks
) -> None:
    target = astronaut_landmarks.astype(np.float64)
    region = face_region(target, astronaut.shape[:2])
    assert region is not None
    y0, _, x0, _ = region
    read = sampling_map(source, target, region)
    local = target - [x0, y0]
    # Where the swapped frame reads the photo at each target landmark: at the photo's own landmark.
    read_at = np.stack(
        [ndimage.map_coordinates(read[..., c], [local[:, 1], local[:, 0]], order=1) for c in range(2)], -1
    )
    error = np.linalg.norm(read_at - source.points, axis=1)
    size = g.face_size(source.points)
    assert error.mean() < 0.02 * size and error.max() < 0.06 * size, (error.mean(), error.max(), size)


def test_the_swapped_face_has_the_targets_landmarks_and_the_photos_identity(
    source, photo, astronaut, astronaut_landmarks, analyzer
) -> None:
    frame = astronaut.copy()
    assert swap_face(frame, astronaut_landmarks.astype(np.float64), source, SwapOptions())
    box = analyzer.detect(frame)[0]
    moved = np.linalg.norm(analyzer.landmarks(frame, box) - astronaut_landmarks, axis=1).mean()
    assert moved < 3.0  # pixels, on a face about 110 px wide
    to_photo = np.linalg.norm(analyzer.embedding(frame, box) - reference_embedding(photo, analyzer))
    before = np.linalg.norm(reference_embedding(astronaut, analyzer) - reference_embedding(photo, analyzer))
    assert to_photo < before - 0.05, (to_photo, before)
    # Far from the face nothing changed.
    assert np.array_equal(frame[400:], astronaut[400:])


def test_colour_transfer_moves_the_regions_colour_and_light_to_the_targets() -> None:
    rng = np.random.default_rng(0)
    h, w = 64, 96
    texture = rng.normal(0, 12, (h, w, 1))
    source = np.clip(np.array([90.0, 140.0, 200.0]) + texture, 0, 255)  # bluish, evenly lit
    light = np.linspace(0.6, 1.2, w)[None, :, None]  # the target is lit from the right
    target = np.clip(np.array([200.0, 150.0, 120.0]) * light + texture, 0, 255)
    weights = np.ones((h, w), np.float32)
    out = transfer_colour(source, target, weights)
    mean_out, _ = weighted_stats(to_lab(out), weights)
    mean_src, _ = weighted_stats(to_lab(source), weights)
    mean_dst, _ = weighted_stats(to_lab(target), weights)
    assert np.abs(mean_out - mean_dst).max() < 2.0 < np.abs(mean_src - mean_dst).max()
    lit = transfer_colour(source, target, weights, lighting_sigma=16.0)
    left, right = to_lab(lit)[:, :24, 0].mean(), to_lab(lit)[:, -24:, 0].mean()
    flat_left, flat_right = to_lab(out)[:, :24, 0].mean(), to_lab(out)[:, -24:, 0].mean()
    assert right - left > 10.0 and abs(flat_right - flat_left) < 2.0


def test_colour_statistics_ignore_pixels_outside_the_weights() -> None:
    source = np.full((20, 20, 3), 100.0)
    target = np.full((20, 20, 3), 150.0)
    target[:, 10:] = 0.0  # background the weights exclude
    weights = np.zeros((20, 20), np.float32)
    weights[:, :10] = 1.0
    out = transfer_colour(source, target, weights)
    assert np.abs(out[:, :10] - 150.0).max() < 1.5


def test_the_targets_open_mouth_and_eyes_are_kept(
    source, astronaut, astronaut_landmarks, analyzer, mouth_opener
):
    frame = mouth_opener(astronaut, astronaut_landmarks, 14.0)
    box = analyzer.detect(frame)[0]
    target = analyzer.landmarks(frame, box).astype(np.float64)
    assert g.face_size(target) > 0 and (target[66, 1] - target[62, 1]) > 8  # the mouth is open
    region = face_region(target, frame.shape[:2])
    assert region is not None
    y0, y1, x0, x1 = region
    masks = face_masks(target - [x0, y0], (y1 - y0, x1 - x0), SwapOptions())
    core = masks.keep > 0.999
    assert core.sum() > 50
    for blend in ("poisson", "feather"):
        out = frame.copy()
        assert swap_face(out, target, source, SwapOptions(blend=blend))
        kept = out[y0:y1, x0:x1][core].astype(int) - frame[y0:y1, x0:x1][core].astype(int)
        assert np.abs(kept).max() <= 1, blend
        skin = (masks.soft > 0.99) & (masks.keep < 0.001)
        changed = np.abs(out[y0:y1, x0:x1][skin].astype(int) - frame[y0:y1, x0:x1][skin].astype(int))
        assert changed.mean() > 5, blend  # while the skin around them is the photo's
    swapped_all = frame.copy()
    swap_face(swapped_all, target, source, SwapOptions(keep_mouth=False, keep_eyes=False))
    assert np.abs(swapped_all[y0:y1, x0:x1][core].astype(int) - frame[y0:y1, x0:x1][core]).mean() > 5


def test_a_face_mostly_outside_the_frame_is_left_alone(source, astronaut, astronaut_landmarks) -> None:
    target = astronaut_landmarks.astype(np.float64) + np.array([-480.0, 0.0])  # all but the edge off the left
    frame = astronaut.copy()
    assert not swap_face(frame, target, source, SwapOptions())
    assert np.array_equal(frame, astronaut)


def test_a_photo_without_a_face_or_with_two_is_refused(analyzer) -> None:
    with pytest.raises(NoFaceError, match="No face was found in the face photo"):
        prepare_source(np.full((64, 64, 3), 90, np.uint8), analyzer)
    two = side_by_side(astronaut_face(260), other_person(90, 200))
    with pytest.raises(AnimaticaError, match="shows 2 faces"):
        prepare_source(two, analyzer)


def test_face_choices_are_parsed_or_refused() -> None:
    assert FaceChoice.parse("largest") == FaceChoice("largest")
    assert FaceChoice.parse(" Index:2 ") == FaceChoice("index", 2)
    assert str(FaceChoice.parse("index:2")) == "index:2"
    for bad in ("index:", "index:-1", "biggest", "index:x"):
        with pytest.raises(AnimaticaError, match="Unknown face choice"):
            FaceChoice.parse(bad)


def _chosen_centres(frame: np.ndarray, tracks: FaceTracks) -> list[float]:
    return [float(points[:, 0].mean()) for _, points in tracks(frame)]


def test_which_face_is_chosen_in_a_two_person_frame(analyzer) -> None:
    astronaut_left = side_by_side(astronaut_face(260), other_person(90, 200))  # both faces ~75 px
    middle = astronaut_left.shape[1] / 2

    def chosen(which: str, frame: np.ndarray = astronaut_left, **kw) -> list[float]:
        return _chosen_centres(frame, FaceTracks(analyzer, FaceChoice.parse(which), smoothing=0.0, **kw))

    assert [c < middle for c in chosen("all")] == [True, False]
    assert [c < middle for c in chosen("index:0")] == [True]
    assert [c < middle for c in chosen("index:1")] == [False]
    assert chosen("index:2") == []
    # The astronaut (right) is the larger face here.
    bigger_right = side_by_side(other_person(80, 220), astronaut_face(320))
    assert [c > bigger_right.shape[1] / 2 for c in chosen("largest", bigger_right)] == [True]
    # By reference: the astronaut, wherever she stands, and nobody when she is not there.
    me = reference_embedding(astronaut_face(400), analyzer)
    astronaut_right = side_by_side(other_person(90, 200), astronaut_face(260))
    assert [c < middle for c in chosen("reference", astronaut_left, reference=me)] == [True]
    assert [c > middle for c in chosen("reference", astronaut_right, reference=me)] == [True]
    nobody = side_by_side(other_person(90, 200, index=5), other_person(90, 200))
    assert chosen("reference", nobody, reference=me) == []


def test_a_chosen_face_stays_chosen_while_it_is_tracked(analyzer) -> None:
    """``largest`` picks once: when the other face grows larger later, the swap does not jump."""
    first = side_by_side(other_person(80, 220), astronaut_face(320))  # the astronaut, right, is larger
    later = side_by_side(other_person(140, 220), astronaut_face(320))  # now the other one is larger
    tracks = FaceTracks(analyzer, FaceChoice("largest"), smoothing=0.0, rescan_every=1)
    middle = first.shape[1] / 2
    assert [c > middle for c in _chosen_centres(first, tracks)] == [True]
    assert [c > middle for c in _chosen_centres(later, tracks)] == [True]
    fresh = FaceTracks(analyzer, FaceChoice("largest"), smoothing=0.0)
    assert [c > middle for c in _chosen_centres(later, fresh)] == [False]


def test_an_unchanged_video_scores_as_the_baseline_and_unequal_videos_are_refused(photo, analyzer) -> None:
    from animatica.face.swap_quality import swap_quality

    head = astronaut_face(200)
    frames = [ndimage.shift(head, (0, s, 0), order=1, mode="nearest") for s in (0, 2, 4, 3)]
    report = swap_quality(photo, iter(frames), iter(frames), analyzer=analyzer)
    assert report.measured == 4 and report.to_original == 0.0
    assert report.to_photo == report.original_to_photo > 0.6  # no closer to the photo: no swap
    assert report.expression_correlation == pytest.approx(1.0)
    with pytest.raises(AnimaticaError, match="different frame counts"):
        swap_quality(photo, iter(frames), iter(frames[:3]), analyzer=analyzer)
