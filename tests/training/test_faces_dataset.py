"""Synthetic faces: layout, determinism, held-out people, neutral start, ground truth, CLI, detection."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.cli.test_cli import assert_one_line_error_in_process, invoke

from animatica.training.errors import DatasetError
from animatica.training.faces import MOTION, neutral, render_frame
from animatica.training.faces import dataset as faces
from animatica.training.faces.params import MOTION_RANGE, sample_motion
from animatica.training.faces.render import background

FRAMES = 6


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _frames(clip: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(clip.glob("*.png"))])


def _params(root: Path, name: str) -> dict:
    return json.loads((root / "params" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "data"
    return faces.write_faces_dataset(out, people=2, clips_per_person=2, seed=3, frames=FRAMES, test_people=2)


def test_layout(tiny: Path) -> None:
    train = sorted(p.name for p in (tiny / "train").iterdir())
    test = sorted(p.name for p in (tiny / "test").iterdir())
    assert train == [f"p000{i}#c0{c}" for i in range(2) for c in range(2)]
    assert test == [f"p000{i}#c0{c}" for i in range(2, 4) for c in range(2)]
    clip = _frames(tiny / "train" / "p0001#c01")
    assert clip.shape == (FRAMES, 64, 64, 3) and clip.dtype == np.uint8
    record = _params(tiny, "train/p0001#c01")
    assert record["person"] == "p0001"
    assert len(record["frames"]) == FRAMES and set(record["frames"][0]) == set(MOTION)
    assert np.asarray(record["landmarks"]).shape == (FRAMES, 68, 2)
    meta = json.loads((tiny / "dataset.json").read_text())
    assert {k: meta[k] for k in ("kind", "version", "seed", "size", "frames", "people", "test_people")} == {
        "kind": "faces", "version": 1, "seed": 3, "size": 64, "frames": FRAMES, "people": 2, "test_people": 2,
    }  # fmt: skip
    assert meta["clips_per_person"] == 2 and meta["parameters"] == list(MOTION)
    assert set(meta["identity_parameters"]) == set(record["identity"])
    pairs = json.loads((tiny / "cross" / "index.json").read_text())["pairs"]
    assert len(pairs) == 2 * 1 * 2  # every ordered pair of test people, every driving clip
    for pair in pairs:
        assert pair["source_person"] != pair["driving_person"]
        assert pair["source"] == f"test/{pair['source_person']}#c00/00000.png"
        assert (tiny / pair["source"]).is_file()
        assert len(list((tiny / pair["truth"]).glob("*.png"))) == FRAMES
        assert len(list((tiny / pair["driving"]).glob("*.png"))) == FRAMES
    assert sorted(p.name for p in (tiny / "cross").iterdir() if p.is_dir()) == sorted(
        Path(p["truth"]).name for p in pairs
    )


@pytest.mark.slow
def test_same_seed_same_files_whatever_the_workers(tiny: Path, tmp_path: Path) -> None:
    again = faces.write_faces_dataset(
        tmp_path / "again", people=2, clips_per_person=2, seed=3, frames=FRAMES, test_people=2, workers=2
    )
    assert _tree(again) == _tree(tiny)
    other = faces.write_faces_dataset(tmp_path / "other", people=1, clips_per_person=1, seed=4, frames=FRAMES)
    assert not np.array_equal(_frames(other / "train" / "p0000#c00"), _frames(tiny / "train" / "p0000#c00"))
    assert _params(other, "train/p0000#c00")["identity"] != _params(tiny, "train/p0000#c00")["identity"]


def test_test_people_are_new_people(tiny: Path) -> None:
    train = {p.name.split("#")[0] for p in (tiny / "train").iterdir()}
    test = {p.name.split("#")[0] for p in (tiny / "test").iterdir()}
    assert not train & test
    identities = {
        json.dumps(_params(tiny, f"{split}/{person}#c00")["identity"], sort_keys=True)
        for split, people in (("train", train), ("test", test))
        for person in people
    }
    assert len(identities) == 4
    # Both clips of a person share the identity, not the motion.
    first, second = _params(tiny, "test/p0003#c00"), _params(tiny, "test/p0003#c01")
    assert first["identity"] == second["identity"] and first["frames"] != second["frames"]


def test_every_clip_starts_neutral_and_frontal(tiny: Path) -> None:
    for path in (tiny / "params").rglob("*.json"):
        record = json.loads(path.read_text())
        assert record["frames"][0] == neutral()
        assert any(v != 0 for frame in record["frames"][1:] for v in frame.values())  # and then moves


def test_motion_is_smooth_and_in_range() -> None:
    motion = sample_motion(np.random.default_rng(1), 200)
    for name, (low, high) in MOTION_RANGE.items():
        values = np.array([f[name] for f in motion])
        assert values.min() >= low and values.max() <= high
        # No jumps: a frame-to-frame step is a small part of the range (blinks are the quickest).
        assert np.abs(np.diff(values)).max() < 0.45 * (high - low)
    assert max(f["mouth_open"] for f in motion) > 0.2 and max(abs(f["yaw"]) for f in motion) > 2


def test_cross_truth_is_the_source_person_with_the_driving_motion(tiny: Path) -> None:
    seed, n_train = 3, 2
    _, test = faces.person_names(n_train, 2)
    source, driver = test[1], test[0]
    identity = faces.identity_of(seed, source)
    scene = faces.scene_of(seed, source, 0)
    driving = _params(tiny, f"test/{driver.name}#c01")
    truth = _frames(tiny / "cross" / f"{source.name}__{driver.name}#c01")
    crossed = _params(tiny, f"cross/{source.name}__{driver.name}#c01")
    assert crossed["frames"] == driving["frames"] and crossed["identity"] == identity
    for t in (0, 3, FRAMES - 1):
        image, landmarks = render_frame(identity, scene, driving["frames"][t], 64)
        assert np.array_equal(image, truth[t])
        assert np.allclose(landmarks, crossed["landmarks"][t], atol=1e-3)
    # The person's own motion gives back the person's own clip, frame for frame.
    own = _params(tiny, f"test/{source.name}#c00")
    clip = _frames(tiny / "test" / f"{source.name}#c00")
    for t in (0, FRAMES - 1):
        assert np.array_equal(render_frame(identity, scene, own["frames"][t], 64)[0], clip[t])
    # The truth is neither the source standing still nor the driving person.
    assert np.abs(truth[-1].astype(int) - truth[0]).mean() > 0.5
    driving_clip = _frames(tiny / "test" / f"{driver.name}#c01")
    assert np.abs(truth[-1].astype(int) - driving_clip[-1]).mean() > 10


def _darkness(image: np.ndarray, point: np.ndarray) -> float:
    x, y = np.rint(point).astype(int)
    return 255 - float(image[y - 1 : y + 2, x - 1 : x + 2].mean())


def test_landmarks_follow_what_is_drawn() -> None:
    identity = {**faces.identity_of(0, faces.Person("train", 2, "p0002")), "skin_tone": 0.1}  # light skin
    scene = faces.scene_of(0, faces.Person("train", 2, "p0002"), 0)
    still, still_points = render_frame(identity, scene, neutral(), 256)
    iod = np.linalg.norm(still_points[45] - still_points[36])
    opened, open_points = render_frame(identity, scene, {**neutral(), "mouth_open": 1.0}, 256)
    # The lower lip and the chin drop, the upper lip hardly moves.
    assert open_points[57, 1] - still_points[57, 1] > 0.15 * iod
    assert open_points[8, 1] - still_points[8, 1] > 0.12 * iod
    assert abs(open_points[51, 1] - still_points[51, 1]) < 0.1 * iod
    # Between the inner lips there is now the dark mouth, where before there was lip.
    gap = (open_points[62] + open_points[66]) / 2
    assert _darkness(opened, gap) > _darkness(still, gap) + 60
    closed, closed_points = render_frame(identity, scene, {**neutral(), "blink": 1.0}, 256)
    assert np.linalg.norm(closed_points[37] - closed_points[41]) < 0.3 * np.linalg.norm(
        still_points[37] - still_points[41]
    )
    pupil = (still_points[37] + still_points[38] + still_points[40] + still_points[41]) / 4
    assert _darkness(still, pupil) > _darkness(closed, pupil) + 60  # the lid covers the pupil
    turned, turned_points = render_frame(identity, scene, {**neutral(), "yaw": 20.0}, 256)
    centre = (still_points[0] + still_points[16]) / 2
    turned_centre = (turned_points[0] + turned_points[16]) / 2
    assert (turned_points[30, 0] - turned_centre[0]) - (still_points[30, 0] - centre[0]) > 0.15 * iod
    assert not np.array_equal(turned, still)
    # The frame's landmarks are where the face is: the pixels around the nose tip are skin, not backdrop.
    backdrop = background(scene, 256)
    x, y = np.rint(still_points[30]).astype(int)
    assert np.abs(still[y, x] / 255 - backdrop[y, x]).sum() > 0.1


@pytest.mark.slow
def test_the_face_toolkit_finds_the_faces() -> None:
    from animatica.training.faces.detection import measure

    seed = 11
    people = [faces.Person("test", i, f"p{i:04d}") for i in range(8)]

    def frames():
        for person in people:
            motion = faces.motion_of(seed, person, 0, 16)
            yield render_frame(
                faces.identity_of(seed, person), faces.scene_of(seed, person, 0), motion[8], 256
            )

    stats = measure(frames())
    # Measured on 100 people per size with bench/faces_detection.py: 98-100% found, ~4.5% error.
    assert stats.rate >= 0.75
    assert stats.landmark_error < 10.0


def test_cli_writes_faces_and_refuses_bad_arguments(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = invoke(
        "data", "synth", "--kind", "faces", "--out", str(out), "--people", "2", "--clips-per-person", "1",
        "--test-people", "2", "--frames", "3", "--size", "64", "--workers", "1", "--measure-detection", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "train").iterdir()) == ["p0000#c00", "p0001#c00"]
    assert sorted(p.name for p in (out / "cross").iterdir()) == [
        "index.json",
        "p0002__p0003#c00",
        "p0003__p0002#c00",
    ]
    assert json.loads((out / "dataset.json").read_text())["kind"] == "faces"
    bad = invoke("data", "synth", "--kind", "faces", "--out", str(tmp_path / "b"), "--size", "100")
    assert_one_line_error_in_process(bad, "--size must be one of 64, 128, 256")
    bad = invoke("data", "synth", "--kind", "people", "--out", str(tmp_path / "c"))
    assert_one_line_error_in_process(bad, "Unknown --kind 'people'")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_refuses_bad_arguments_and_non_empty_output(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least 1"):
        faces.write_faces_dataset(tmp_path / "a", people=0, clips_per_person=1, seed=0)
    with pytest.raises(DatasetError, match="at least 2 frames"):
        faces.write_faces_dataset(tmp_path / "a", people=1, clips_per_person=1, seed=0, frames=1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        faces.write_faces_dataset(tmp_path / "full", people=1, clips_per_person=1, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = faces.render_clip

    def flaky(*args: object, **kwargs: object) -> tuple[np.ndarray, np.ndarray]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(faces, "render_clip", flaky)
    with pytest.raises(OSError, match="disk full"):
        faces.write_faces_dataset(tmp_path / "out", people=2, clips_per_person=1, seed=0, frames=2)
    assert list(tmp_path.iterdir()) == []
