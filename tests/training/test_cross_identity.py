"""Cross-identity evaluation: measures on constructed inputs, engines that copy or know the truth,
and the command end to end on a tiny dataset in the faces layout.

The dataset is made from the one real face photo at hand (scikit-image's astronaut): person
p0000 is the photo, p0001 the photo with its colour channels swapped; a clip is a sequence of
crops of the photo at known offsets, so a head moving in the frame, and the truth of "p0000 with
p0001's clip" is p0000's photo cropped at p0001's offsets. Nothing here depends on how a face
renderer draws faces.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from tests.cli.test_cli import assert_one_line_error_in_process, invoke

from animatica.errors import AnimaticaError
from animatica.face.analyzer import get_analyzer
from animatica.media.reader import iter_frames
from animatica.training.cross_identity import (
    METHODS,
    animate_pair,
    correlation,
    evaluate_cross_identity,
    identity_indices,
    interocular,
    known_boxes,
    l1_per_frame,
    landmark_distance,
    mouth_opening,
    yaw_proxy,
)
from animatica.training.errors import DatasetError

SIZE = 64
PARAMETERS = ("mouth_open", "smile", "blink", "brows", "yaw", "pitch", "roll")
# Each person's framing: the side of the crop of the 512-pixel photo that becomes a frame.
CROPS = {"p0000": 180, "p0001": 130}
# Where the frame looks, per frame of each person's clip c00, in frame pixels: the face moves.
MOTION = {"p0000": [(0, 0), (4, 0), (8, 1), (4, 3)], "p0001": [(0, 0), (0, 4), (-3, 7), (-5, 3)]}


def _person(photo: np.ndarray, person: str) -> np.ndarray:
    return photo if person == "p0000" else np.ascontiguousarray(photo[..., ::-1])


def _crop(
    photo: np.ndarray, points: np.ndarray, side: int, offset: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The frame looking ``offset`` away from the face-centred window, and the landmarks in it."""
    cx, cy = points.mean(axis=0)
    scale = SIZE / side
    x0, y0 = round(cx - side / 2 + offset[0] / scale), round(cy - side / 2 + offset[1] / scale)
    frame = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side]).resize((SIZE, SIZE), Image.BICUBIC)
    return np.asarray(frame), (points - [x0, y0] + 0.5) * scale - 0.5


def _write_clip(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:05d}.png")


def write_tiny_faces(root: Path) -> Path:
    """Two test people, one clip each, both cross pairs, in the faces dataset layout.

    The people differ in colours and framing (so in face size), which is all an evaluation of
    pairing needs; the clips move the head in the frame.
    """
    photo = skdata.astronaut()
    analyzer = get_analyzer("hog")
    points = analyzer.landmarks(photo, analyzer.detect(photo)[0]).astype(np.float64)
    (root / "params" / "test").mkdir(parents=True)
    people = list(MOTION)
    for person in people:
        crops = [_crop(_person(photo, person), points, CROPS[person], o) for o in MOTION[person]]
        _write_clip(root / "test" / f"{person}#c00", [c[0] for c in crops])
        params = {
            "person": person,
            "identity": {},
            "frames": [dict.fromkeys(PARAMETERS, 0.0) | {"yaw": 0.1 * i} for i in range(len(crops))],
            "landmarks": [c[1].tolist() for c in crops],
        }
        (root / "params" / "test" / f"{person}#c00.json").write_text(json.dumps(params))
    pairs = []
    for a in people:
        for b in people:
            if a == b:
                continue
            truth = [_crop(_person(photo, a), points, CROPS[a], o) for o in MOTION[b]]
            _write_clip(root / "cross" / f"{a}__{b}#c00", [t[0] for t in truth])
            if not pairs:  # the truth's own landmarks, which a dataset may add, for the first pair only
                (root / "params" / "cross").mkdir()
                landmarks = {"landmarks": [t[1].tolist() for t in truth]}
                (root / "params" / "cross" / f"{a}__{b}#c00.json").write_text(json.dumps(landmarks))
            pairs.append(
                {"source": f"test/{a}#c00/00000.png", "source_person": a, "driving": f"test/{b}#c00",
                 "driving_person": b, "truth": f"cross/{a}__{b}#c00"}
            )  # fmt: skip
    (root / "cross" / "index.json").write_text(json.dumps({"pairs": pairs}))
    info = {"kind": "faces", "version": 1, "seed": 5, "size": SIZE, "frames": 4, "people": 0,
            "test_people": 2, "clips_per_person": 1}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_faces(tmp_path_factory.mktemp("faces") / "data")


def _image(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _read(folder: Path) -> np.ndarray:
    return np.stack([_image(p) for p in sorted(folder.glob("*.png"))])


class _Engine:
    """An engine that does what ``render`` says with the source and driving frames it is given."""

    warmup_frames = 0

    def __init__(self, name: str, render: Any, frame_size: tuple[int, int] | None = None) -> None:
        self.name, self.render, self.frame_size = name, render, frame_size

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> dict[str, Any]:
        return {"source": source, "initial": initial_driving, "done": 0}

    def animate(self, state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
        out = self.render(state, driving)
        state["done"] += len(driving)
        return out


def _copy_source(state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
    return np.repeat(state["source"][None], len(driving), axis=0)


def _copy_driving(state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
    return driving.copy()


def _oracle(root: Path) -> Any:
    """Renders the truth: finds the pair by its source and first driving frame, as no real engine can."""
    truths = {}
    for entry in json.loads((root / "cross" / "index.json").read_text())["pairs"]:
        key = (_image(root / entry["source"]).tobytes(), _read(root / entry["driving"])[0].tobytes())
        truths[key] = _read(root / entry["truth"])

    def render(state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
        truth = truths[(state["source"].tobytes(), state["initial"].tobytes())]
        return truth[state["done"] : state["done"] + len(driving)]

    return render


# ---------------------------------------------------------------- measures


def _face(gap: float = 0.0, nose_dx: float = 0.0) -> np.ndarray:
    """Constructed landmarks: eye corners 40 px apart, an inner-lip gap, a nose tip offset."""
    points = np.zeros((68, 2))
    points[0], points[16] = (0, 50), (100, 50)  # jaw ends
    points[36], points[45] = (30, 40), (70, 40)  # outer eye corners
    points[30] = (50 + nose_dx, 60)
    points[[61, 62, 63], 1] = 80.0
    points[[67, 66, 65], 1] = 80.0 + gap
    return points


def test_l1_is_zero_for_identical_frames_and_the_mean_difference_otherwise() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    assert np.array_equal(l1_per_frame(frames, frames), np.zeros(3))
    black, white = np.zeros_like(frames), np.full_like(frames, 255)
    assert np.allclose(l1_per_frame(black, white), 1.0)
    half = black.copy()
    half[:, :4] = 255
    assert np.allclose(l1_per_frame(half, black), 0.5)
    with pytest.raises(ValueError):
        l1_per_frame(frames[:, :4], frames)


def test_landmark_distance_is_in_percent_of_the_inter_ocular_distance() -> None:
    truth = np.stack([_face(), _face(gap=5)])
    assert np.array_equal(landmark_distance(truth, truth), np.zeros(2))
    assert interocular(truth) == pytest.approx([40, 40])
    moved = truth + np.array([0.0, 4.0])  # every point 4 px off, a tenth of the eyes' distance
    assert landmark_distance(moved, truth) == pytest.approx([10.0, 10.0])


def test_expression_measures_read_the_mouth_gap_and_the_nose_offset() -> None:
    faces = np.stack([_face(gap=0), _face(gap=8), _face(nose_dx=-20), _face(nose_dx=10)])
    assert mouth_opening(faces) == pytest.approx([0.0, 8 / 40, 0.0, 0.0])
    assert yaw_proxy(faces) == pytest.approx([0.0, 0.0, -0.2, 0.1])


def test_correlation_of_still_and_moving_series() -> None:
    truth = np.array([0.0, 1.0, 3.0, 2.0])
    assert correlation(truth * 2 + 1, truth) == pytest.approx(1.0)
    assert correlation(-truth, truth) == pytest.approx(-1.0)
    assert correlation(np.full(4, 0.3), truth) == 0.0  # a still output follows nothing
    assert correlation(truth, np.full(4, 0.3)) is None  # nothing to follow
    assert list(identity_indices(32, 8)) == [0, 4, 9, 13, 18, 22, 27, 31]
    assert list(identity_indices(3, 8)) == [0, 1, 2]


def test_known_boxes_follow_the_driving_motion_scaled_to_the_source_face() -> None:
    source = _face()
    driving = np.stack([_face() * 2, _face() * 2 + [10.0, 0.0]])  # a face twice as big, moving 10 px
    boxes = known_boxes(source, driving)
    assert (boxes[0].left, boxes[0].top, boxes[0].right, boxes[0].bottom) == (0, 0, 100, 80)
    assert boxes[1].left == pytest.approx(5.0) and boxes[1].right == pytest.approx(105.0)


def test_an_engine_of_another_size_is_scored_at_the_dataset_size() -> None:
    source = np.zeros((64, 64, 3), np.uint8)
    ramp = np.linspace(0, 255, 64)
    smooth = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], ramp[:, None] * 0 + 128), axis=-1)
    driving = np.stack([np.roll(smooth, i, axis=1) for i in range(5)]).astype(np.uint8)
    seen: list[tuple[int, ...]] = []

    def render(state: dict[str, Any], frames: np.ndarray) -> np.ndarray:
        seen.append(frames.shape)
        return frames

    out = animate_pair(_Engine("small", render, frame_size=(32, 32)), source, driving, batch_size=2)
    assert seen == [(2, 32, 32, 3), (2, 32, 32, 3), (1, 32, 32, 3)]
    assert out.shape == driving.shape
    assert l1_per_frame(out, driving).max() < 0.1  # the driving frames, down and up again


# ---------------------------------------------------------------- whole evaluations


def _method_keys(report: dict[str, Any], prefix: str) -> dict[str, Any]:
    names = ("l1", "landmark_distance", "no_face_rate", "identity_distance", "expression_correlation",
             "mouth_correlation", "yaw_correlation", "landmark_expression_correlation",
             "landmark_mouth_correlation", "landmark_yaw_correlation")  # fmt: skip
    return {name: report[prefix + name] for name in names}


@pytest.mark.slow
def test_engines_that_copy_score_exactly_the_baselines(faces: Path) -> None:
    copy_source = evaluate_cross_identity(_Engine("copy", _copy_source), faces, identity_frames=2)
    assert _method_keys(copy_source, "") == _method_keys(copy_source, METHODS["source"])
    copy_driving = evaluate_cross_identity(_Engine("copy", _copy_driving), faces, identity_frames=2)
    assert _method_keys(copy_driving, "") == _method_keys(copy_driving, METHODS["driving"])
    # the baselines, computed here from the files alone
    sources, drivings = [], []
    for entry in json.loads((faces / "cross" / "index.json").read_text())["pairs"]:
        truth = _read(faces / entry["truth"])
        source = _image(faces / entry["source"])
        sources.append(np.abs(truth.astype(float) - source).mean() / 255)
        drivings.append(np.abs(truth.astype(float) - _read(faces / entry["driving"])).mean() / 255)
    assert copy_source["baseline_source_l1"] == pytest.approx(np.mean(sources), rel=1e-9)
    assert copy_source["baseline_driving_l1"] == pytest.approx(np.mean(drivings), rel=1e-9)
    assert copy_source["baseline_source_expression_correlation"] == 0.0  # a still image
    assert copy_source["pairs"] == 2 and copy_source["frames"] == 8


@pytest.mark.slow
def test_an_engine_that_renders_the_truth_scores_zero_distances(faces: Path) -> None:
    report = evaluate_cross_identity(_Engine("oracle", _oracle(faces)), faces, identity_frames=2)
    assert report["l1"] == 0.0 and report["landmark_distance"] == 0.0 and report["identity_distance"] == 0.0
    assert report["no_face_rate"] == report["truth_no_face_rate"] == 0.0
    correlations = [row[f"landmark_{m}_correlation"] for row in report["rows"] for m in ("mouth", "yaw")]
    assert any(c is not None for c in correlations)
    assert all(c is None or c == pytest.approx(1.0) for c in correlations)
    # the expression reader's figure of the truth itself is its ceiling, reported as reader_check
    for row in report["rows"]:
        assert [row[f"{m}_correlation"] for m in ("mouth", "yaw")] == list(row["reader_check"].values())
    # the baselines are not the truth: the colours of the other person, or a face that stays put
    assert report["baseline_driving_l1"] > 0.05 and report["baseline_source_l1"] > 0.01
    assert report["baseline_driving_identity_distance"] > 0.0
    assert report["l1_ratio"] == 0.0


def test_a_failing_pair_is_left_out_of_every_figure(faces: Path) -> None:
    from animatica.face.analyzer import NoFaceError

    def render(state: dict[str, Any], driving: np.ndarray) -> np.ndarray:
        if state["source"][..., 0].mean() < state["source"][..., 2].mean():  # the swapped-colour person
            raise NoFaceError("No face was found in the source image")
        return _copy_source(state, driving)

    report = evaluate_cross_identity(_Engine("picky", render), faces, identity_frames=1)
    assert report["pairs"] == 1 and [r["pair"] for r in report["rows"]] == ["p0000__p0001#c00"]
    assert report["failed_pairs"] == [
        {"pair": "p0001__p0000#c00", "error": "No face was found in the source image"}
    ]
    assert report["baseline_source_l1"] == report["rows"][0]["baseline_source_l1"]


# ---------------------------------------------------------------- the command


@pytest.mark.slow
def test_cross_identity_from_the_command_line_with_the_landmarks_engine(faces: Path, tmp_path: Path) -> None:
    out, videos = tmp_path / "report.json", tmp_path / "videos"
    result = invoke("evaluate", "--cross-identity", "--data", str(faces), "--engine", "landmarks",
                    "--json-out", str(out), "--videos-out", str(videos))  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(out.read_text())
    for key in ("l1", "baseline_source_l1", "baseline_driving_l1", "expression_correlation",
                "identity_distance", "landmark_distance", "no_face_rate"):  # fmt: skip
        assert key in report and key in report["rows"][0]
    assert report["engine"] == "landmarks" and report["checkpoint"] is None
    assert report["seed"] == 5 and report["pairs"] == 2 and report["frames"] == 8
    assert "cores" in report["machine"]
    # the toolkit reads the truth's landmarks where the dataset gives them (first pair only)
    assert (
        report["rows"][0]["truth_landmark_error"] < 10.0 and report["rows"][1]["truth_landmark_error"] is None
    )
    # the engine animates the right photo: far closer to the truth than the other person's frames
    assert report["l1"] < 0.5 * report["baseline_driving_l1"]
    assert report["landmark_distance"] < report["baseline_driving_landmark_distance"]
    assert "copy source" in result.stdout and "expression correlation" in result.stdout
    frames = list(iter_frames(videos / "p0000__p0001#c00.mp4"))
    assert len(frames) == 4 and frames[0].shape == (SIZE, 4 * SIZE, 3)


def test_max_pairs_takes_the_first_pairs_of_the_index(faces: Path) -> None:
    report = evaluate_cross_identity(_Engine("copy", _copy_source), faces, max_pairs=1, identity_frames=1)
    assert [row["pair"] for row in report["rows"]] == ["p0000__p0001#c00"] and report["frames"] == 4
    with pytest.raises(AnimaticaError, match="at least 1"):
        evaluate_cross_identity(_Engine("copy", _copy_source), faces, max_pairs=0)


def test_command_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "test" / "clip").mkdir(parents=True)
    result = invoke("evaluate", "--cross-identity", "--data", str(plain), "--engine", "landmarks")
    assert_one_line_error_in_process(result, "cross/index.json", "--kind faces")
    result = invoke("evaluate", "--cross-identity", "--data", str(plain), "--engine", "nope")
    assert_one_line_error_in_process(result, "Unknown engine 'nope'")
    result = invoke("evaluate", "--data", str(plain))
    assert_one_line_error_in_process(result, "--checkpoint is needed")
    result = invoke("evaluate", "--data", str(plain), "--checkpoint", "demo", "--engine", "landmarks")
    assert_one_line_error_in_process(result, "--cross-identity")
    (plain / "cross").mkdir()
    (plain / "cross" / "index.json").write_text('{"pairs": []}')
    result = invoke("evaluate", "--cross-identity", "--data", str(plain), "--engine", "landmarks")
    assert_one_line_error_in_process(result, "lists no pairs")
    result = invoke("evaluate", "--cross-identity", "--data", str(plain), "--engine", "fomm")
    assert_one_line_error_in_process(result, "lists no pairs")


def test_missing_dataset_folder() -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        evaluate_cross_identity(_Engine("copy", _copy_source), Path("/nonexistent/faces"))
