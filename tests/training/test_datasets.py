"""Datasets: the three video forms, id sampling, repeater, resumable batch order, pairs lists."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animatica.media.writer import open_writer
from animatica.training.datasets import (
    DatasetRepeater,
    EpochBatches,
    FramesDataset,
    PairedDataset,
    list_videos,
    random_pairs,
    read_pairs,
    read_video,
    write_pairs,
)
from animatica.training.errors import DatasetError
from animatica.training.synth import render_clip


def _frame_folder(folder: Path, frames: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png")
    return folder


@pytest.fixture
def clip() -> np.ndarray:
    return render_clip(11, "train", 0, size=32, frames=6)


def test_folder_strip_and_video_give_the_same_frames(tmp_path: Path, clip: np.ndarray) -> None:
    folder = _frame_folder(tmp_path / "v" / "folder", clip)
    strip = tmp_path / "v" / "strip.png"
    Image.fromarray(np.concatenate(list(clip), axis=1)).save(strip)
    video = tmp_path / "v" / "movie.mp4"
    with open_writer(video, 10) as writer:
        for frame in clip:
            writer.write(frame)
    assert [p.name for p in list_videos(tmp_path / "v")] == ["folder", "movie.mp4", "strip.png"]
    assert np.array_equal(read_video(folder, (32, 32)), clip)
    assert np.array_equal(read_video(strip, (32, 32)), clip)
    decoded = read_video(video, (32, 32))
    assert decoded.shape == clip.shape
    assert np.abs(decoded.astype(int) - clip.astype(int)).mean() < 12  # lossy H.264
    assert np.array_equal(read_video(folder, (32, 32), [4, 1]), clip[[4, 1]])
    assert read_video(folder, (16, 16)).shape == (6, 16, 16, 3)


def test_bad_strip_width_is_explained(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((32, 70, 3), np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(DatasetError, match="whole number"):
        read_video(tmp_path / "odd.png", (32, 32))


def test_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        list_videos(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no videos"):
        list_videos(tmp_path / "empty")
    (tmp_path / "split" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no test/ folder"):
        FramesDataset(tmp_path / "split", (32, 32), is_train=False)


def test_training_items_are_pure_functions_of_their_key(tiny_data: Path) -> None:
    dataset = FramesDataset(tiny_data, (32, 32), is_train=True, seed=3)
    a, b = dataset[(2, 1)], dataset[(2, 1)]
    assert torch.equal(a["source"], b["source"]) and torch.equal(a["driving"], b["driving"])
    assert a["source"].shape == (3, 32, 32) and a["source"].dtype == torch.float32
    other_epoch = dataset[(3, 1)]
    assert not torch.equal(a["source"], other_epoch["source"]) or not torch.equal(
        a["driving"], other_epoch["driving"]
    )
    # Source and driving are real frames of the named clip.
    frames = read_video(tiny_data / "train" / a["name"], (32, 32)).astype(np.float32) / 255
    src = a["source"].permute(1, 2, 0).numpy()
    assert min(np.abs(frames - src).max(axis=(1, 2, 3))) < 1e-6


def test_test_items_are_whole_videos(tiny_data: Path) -> None:
    dataset = FramesDataset(tiny_data, (32, 32), is_train=False)
    item = dataset[1]
    assert item["name"] == "clip00001" and item["video"].shape == (8, 32, 32, 3)


def test_id_sampling_groups_by_prefix(tmp_path: Path, clip: np.ndarray) -> None:
    for name in ("alice#1", "alice#2", "alice#3", "bob#1"):
        _frame_folder(tmp_path / "train" / name, clip)
    dataset = FramesDataset(tmp_path, (32, 32), is_train=True, id_sampling=True)
    assert len(dataset) == 2 and dataset.ids == ["alice", "bob"]
    picked = {dataset[(e, 0)]["name"] for e in range(30)}
    assert picked == {"alice#1", "alice#2", "alice#3"}
    assert {dataset[(e, 1)]["name"] for e in range(5)} == {"bob#1"}
    assert len(FramesDataset(tmp_path, (32, 32), is_train=True)) == 4


def test_repeater_draws_fresh_frames_each_repeat(tiny_data: Path) -> None:
    dataset = FramesDataset(tiny_data, (32, 32), is_train=True)
    repeated = DatasetRepeater(dataset, 3)
    assert len(repeated) == 18
    first, again = repeated[(0, 1)], repeated[(0, 7)]  # same clip, second repetition
    assert first["name"] == again["name"]
    assert not (
        torch.equal(first["source"], again["source"]) and torch.equal(first["driving"], again["driving"])
    )
    with pytest.raises(IndexError):
        repeated[(0, 18)]


def test_epoch_batches_are_seeded_and_resumable() -> None:
    full = list(EpochBatches(10, 3, seed=5, epoch=2))
    assert len(full) == 3 and all(len(b) == 3 for b in full)  # the last partial batch is dropped
    assert {e for b in full for e, _ in b} == {2}
    assert len({i for b in full for _, i in b}) == 9
    assert full == list(EpochBatches(10, 3, seed=5, epoch=2))
    assert full[1:] == list(EpochBatches(10, 3, seed=5, epoch=2, start_batch=1))
    assert full != list(EpochBatches(10, 3, seed=5, epoch=3))


def test_pairs_csv_round_trip_and_errors(tmp_path: Path, tiny_data: Path) -> None:
    names = ["clip00000", "clip00001"]
    pairs = random_pairs(names, 3, seed=1)
    assert all(s != d for s, d in pairs)
    write_pairs(tmp_path / "pairs.csv", pairs)
    assert read_pairs(tmp_path / "pairs.csv", names) == pairs
    paired = PairedDataset(FramesDataset(tiny_data, (32, 32), is_train=False), pairs)
    item = paired[0]
    assert item["source_name"] == pairs[0][0] and item["driving_video"].shape == (8, 32, 32, 3)
    (tmp_path / "bad.csv").write_text("source,driving\nclip00000,ghost\n")
    with pytest.raises(DatasetError, match="ghost"):
        read_pairs(tmp_path / "bad.csv", names)


def test_training_pairs_from_video_files_and_strips(tmp_path: Path, clip: np.ndarray) -> None:
    (tmp_path / "train").mkdir()
    with open_writer(tmp_path / "train" / "a.mp4", 10) as writer:
        for frame in clip:
            writer.write(frame)
    Image.fromarray(np.concatenate(list(clip), axis=1)).save(tmp_path / "train" / "b.png")
    dataset = FramesDataset(tmp_path, (32, 32), is_train=True)
    names = {dataset[(0, i)]["name"] for i in range(2)}
    assert names == {"a", "b"}
    item = dataset[(0, 1)]
    frames = clip.astype(np.float32) / 255
    assert min(np.abs(frames - item["driving"].permute(1, 2, 0).numpy()).max(axis=(1, 2, 3))) < 1e-6
