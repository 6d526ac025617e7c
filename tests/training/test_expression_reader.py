"""The expression reader of the cross-identity evaluation: the shipped one reads the rendered mouth
opening and head turn of faces it never saw, whoever makes them; a still clip reads as no motion;
training is reproducible and the file format is checked."""

from pathlib import Path

import numpy as np
import pytest
import torch

from animatica.errors import CheckpointError
from animatica.training.cross_identity import READ_PARAMETERS, correlation, reader_correlations
from animatica.training.faces.dataset import Person, identity_of, motion_of, render_clip, scene_of
from animatica.training.faces.regressor import (
    SIDE,
    load_reader,
    save_reader,
    shipped_reader,
    train_reader,
)

SEED = 77  # a seed the reader was not trained on


def _clip(person: Person, driver: Person, frames: int = 32) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``person`` making ``driver``'s motion, and that motion's mouth opening and yaw."""
    motion = motion_of(SEED, driver, 0, frames)
    images, _ = render_clip(identity_of(SEED, person), scene_of(SEED, person, 0), motion, SIDE)
    params = {name: np.array([f[key] for f in motion]) for name, key in READ_PARAMETERS.items()}
    return images, params


@pytest.fixture(scope="module")
def cross_clips() -> list[tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]:
    """(truth, driving, params) of three cross-identity pairs of unseen people."""
    people = [Person("test", i, f"p{i:04d}") for i in range(3)]
    out = []
    for a, b in ((0, 1), (1, 2), (2, 0)):
        truth, params = _clip(people[a], people[b])
        driving, _ = _clip(people[b], people[b])
        out.append((truth, driving, params))
    return out


def test_the_shipped_reader_follows_the_rendered_motion_of_unseen_people(cross_clips) -> None:
    reader = shipped_reader()
    for name in READ_PARAMETERS:
        truth = np.mean([reader_correlations(reader, t, p)[name] for t, _, p in cross_clips])
        # copying the driving clip is right motion on the wrong person: the reader scores it high too
        driving = np.mean([reader_correlations(reader, d, p)[name] for _, d, p in cross_clips])
        assert truth > 0.8 and driving > 0.8, (name, truth, driving)


def test_a_still_clip_reads_as_no_motion(cross_clips) -> None:
    truth, _, params = cross_clips[0]
    still = np.repeat(truth[:1], len(truth), axis=0)
    assert reader_correlations(shipped_reader(), still, params) == {"mouth": 0.0, "yaw": 0.0}


def test_reading_does_not_depend_on_the_frame_size(cross_clips) -> None:
    truth = cross_clips[1][0]
    big = np.stack([np.kron(f, np.ones((2, 2, 1), np.uint8)) for f in truth])  # 128 px, same picture
    small, large = shipped_reader().read(truth), shipped_reader().read(big)
    for key in ("mouth_open", "yaw"):
        assert correlation(large[key], small[key]) > 0.95


def test_training_is_reproducible_and_saves_strictly(tmp_path: Path, cross_clips) -> None:
    truth, driving, params = cross_clips[0]
    images = np.concatenate([truth, driving])
    targets = np.tile(np.stack([params["mouth"], params["yaw"] / 25.0], axis=1), (2, 1)).astype(np.float32)
    first = train_reader(images, targets, steps=3, batch=8, seed=3)
    second = train_reader(images, targets, steps=3, batch=8, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    path = save_reader(first, tmp_path / "reader.pth", {"steps": 3})
    loaded = load_reader(path)
    np.testing.assert_array_equal(loaded.read(truth)["yaw"], first.read(truth)["yaw"])
    foreign = tmp_path / "foreign.pth"
    torch.save({"format": "something else"}, foreign)
    with pytest.raises(CheckpointError, match="not an expression reader"):
        load_reader(foreign)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_reader(tmp_path / "missing.pth")
