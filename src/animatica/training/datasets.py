"""Video datasets in the layouts of the public FOMM data: frame folders, image strips, video files.

A dataset root holds ``train/`` and ``test/`` (or is itself a flat folder of videos, e.g. when
``DIR/test`` is given to evaluation). A video is one of

* a folder of PNG frames (``00000.png``, ``00001.png``, …),
* one PNG/JPG strip with the frames side by side (width = frames × frame width),
* an mp4/gif/mov/avi/mkv/webm file.

With id sampling, names are ``<id>#<rest>``: an epoch visits every id once and picks one of its
videos at random, so identities with many clips do not dominate training.

Every random choice of a training item is drawn from a generator seeded by ``(seed, epoch,
index)``: an item is a pure function of where it sits in training, which is what lets a resumed
run see exactly the samples an uninterrupted run would have seen, whichever worker loads it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from animatica.errors import MediaError
from animatica.media.fit import fit_frame
from animatica.media.reader import iter_frames
from animatica.training.augment import Augmenter
from animatica.training.errors import DatasetError

VIDEO_SUFFIXES = (".mp4", ".gif", ".mov", ".avi", ".mkv", ".webm")
STRIP_SUFFIXES = (".png", ".jpg", ".jpeg")
ItemKey = int | tuple[int, int]  # an index, or (epoch, index) during training


def _frame_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))


def is_video(path: Path) -> bool:
    """Whether ``path`` is one of the three accepted video forms."""
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return bool(_frame_files(path))
    return path.suffix.lower() in VIDEO_SUFFIXES + STRIP_SUFFIXES


def list_videos(folder: Path) -> list[Path]:
    """The videos directly inside ``folder``, sorted by name."""
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist; pass a folder of videos.")
    videos = sorted((p for p in folder.iterdir() if is_video(p)), key=lambda p: p.name)
    if not videos:
        raise DatasetError(
            f"{folder} holds no videos (PNG-frame folders, PNG/JPG strips or mp4/gif/mov files); "
            "check the path or create data with `animatica data synth`."
        )
    return videos


def video_name(path: Path) -> str:
    """The name a video is known by in pairs lists and reports: its file name without suffix."""
    return path.name if path.is_dir() else path.stem


def _read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"frame {path} cannot be read ({exc}); replace or remove it.") from exc


def _fit(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return fit_frame(frame, shape) if frame.shape[:2] != shape else frame


def _strip_frames(path: Path, shape: tuple[int, int]) -> list[np.ndarray]:
    strip = _read_png(path)
    height, width = strip.shape[:2]
    frame_w = max(1, round(height * shape[1] / shape[0]))
    count = width // frame_w
    if count < 1 or count * frame_w != width:
        raise DatasetError(
            f"strip {path} is {width}x{height}; its width must be a whole number of "
            f"{frame_w}-pixel frames for the configured {shape[1]}x{shape[0]} frame shape."
        )
    return [strip[:, i * frame_w : (i + 1) * frame_w] for i in range(count)]


def count_frames(path: Path, shape: tuple[int, int]) -> int:
    """Number of frames in a video (decodes files; frame folders are only listed)."""
    if path.is_dir():
        return len(_frame_files(path))
    return len(read_video(path, shape))


def read_video(path: Path, shape: tuple[int, int], indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames of a video as (N, H, W, 3) uint8 at ``shape`` = (height, width); all or ``indices``."""
    if path.is_dir():
        files = _frame_files(path)
        chosen = files if indices is None else [files[i] for i in indices]
        frames = [_read_png(p) for p in chosen]
    else:
        if path.suffix.lower() in STRIP_SUFFIXES:
            frames = _strip_frames(path, shape)
        else:
            try:
                frames = list(iter_frames(path))
            except MediaError as exc:
                raise DatasetError(f"video {path} cannot be decoded: {exc}") from exc
        if indices is not None:
            frames = [frames[i] for i in indices]
    if not frames:
        raise DatasetError(f"video {path} has no frames; remove it from the dataset.")
    return np.stack([_fit(f, shape) for f in frames])


def _split_folder(root: Path, split: str) -> Path:
    """``root/<split>`` when the dataset has the train/test layout, else ``root`` itself."""
    if (root / "train").is_dir() or (root / "test").is_dir():
        folder = root / split
        if not folder.is_dir():
            raise DatasetError(f"dataset {root} has no {split}/ folder; add one or pass that folder itself.")
        return folder
    return root


def item_rng(seed: int, key: ItemKey) -> tuple[np.random.Generator, int]:
    """The generator for one item and its plain index; keys without an epoch use epoch 0."""
    epoch, index = key if isinstance(key, tuple) else (0, key)
    return np.random.default_rng([seed, epoch, index]), index


class FramesDataset(Dataset):
    """Training pairs (source, driving) from one split, or whole videos for evaluation."""

    def __init__(
        self,
        root: Path,
        frame_shape: Sequence[int] = (256, 256),
        is_train: bool = True,
        id_sampling: bool = False,
        augmentation_params: Mapping[str, Any] | None = None,
        seed: int = 0,
    ):
        self.root = Path(root)
        self.folder = _split_folder(self.root, "train" if is_train else "test")
        self.videos = list_videos(self.folder)
        self.shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.is_train = is_train
        self.seed = seed
        self.augment = Augmenter(augmentation_params) if is_train else None
        self.id_sampling = id_sampling
        groups: dict[str, list[Path]] = {}
        for video in self.videos:
            key = video_name(video).split("#")[0] if id_sampling else video_name(video)
            groups.setdefault(key, []).append(video)
        self.ids = sorted(groups)
        self.groups = groups

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: ItemKey) -> dict[str, Any]:
        rng, index = item_rng(self.seed, key)
        # Indices beyond the length come from a repeater: same video, a fresh random draw.
        candidates = self.groups[self.ids[index % len(self.ids)]]
        path = candidates[int(rng.integers(len(candidates)))] if len(candidates) > 1 else candidates[0]
        if not self.is_train:
            return {"video": read_video(path, self.shape), "name": video_name(path)}
        # Frame folders are listed and only two frames decoded; files are decoded once, whole.
        whole = None if path.is_dir() else read_video(path, self.shape)
        total = count_frames(path, self.shape) if whole is None else len(whole)
        if total < 2:
            raise DatasetError(f"video {path} has {total} frame; training needs at least two per video.")
        picks = sorted(rng.choice(total, size=2, replace=False).tolist())
        frames = list(read_video(path, self.shape, picks) if whole is None else whole[picks])
        assert self.augment is not None
        source, driving = self.augment(frames, rng)
        return {
            "source": torch.from_numpy(np.ascontiguousarray(source.transpose(2, 0, 1))),
            "driving": torch.from_numpy(np.ascontiguousarray(driving.transpose(2, 0, 1))),
            "name": video_name(path),
        }


class DatasetRepeater(Dataset):
    """Repeat a small dataset ``num_repeats`` times per epoch, so epochs are not dominated by overhead."""

    def __init__(self, dataset: FramesDataset, num_repeats: int = 1):
        if num_repeats < 1:
            raise DatasetError(f"num_repeats must be at least 1, got {num_repeats}.")
        self.dataset = dataset
        self.num_repeats = num_repeats

    def __len__(self) -> int:
        return self.num_repeats * len(self.dataset)

    def __getitem__(self, key: ItemKey) -> dict[str, Any]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(index)
        # The full index (not index % length) seeds the item, so each repetition draws new frames.
        return self.dataset[(epoch, index)]


class EpochBatches(Sampler[list[tuple[int, int]]]):
    """Batches of (epoch, index) keys in a per-epoch seeded order, resumable at any batch.

    The order of epoch e is a permutation drawn from a generator seeded by (seed, e), and the
    last incomplete batch is dropped (batch norm needs more than one sample).
    """

    def __init__(self, length: int, batch_size: int, seed: int, epoch: int = 0, start_batch: int = 0):
        self.length = length
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = epoch
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        return self.length // self.batch_size

    def __len__(self) -> int:
        return max(self.batches_per_epoch() - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator).tolist()
        for b in range(self.start_batch, self.batches_per_epoch()):
            chunk = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield [(self.epoch, i) for i in chunk]


# --- pairs for animation evaluation ------------------------------------------------------------------


def read_pairs(path: Path, names: Sequence[str]) -> list[tuple[str, str]]:
    """(source, driving) name pairs from a CSV with ``source`` and ``driving`` columns."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DatasetError(f"pairs list {path} cannot be read ({exc.strerror}); check the path.") from exc
    known = set(names)
    pairs = []
    for number, row in enumerate(rows, start=2):
        if row.get("source") is None or row.get("driving") is None:
            raise DatasetError(f"pairs list {path} needs 'source' and 'driving' columns (line {number}).")
        missing = [n for n in (row["source"], row["driving"]) if n not in known]
        if missing:
            raise DatasetError(
                f"pairs list {path} line {number} names unknown video(s): {', '.join(missing)}."
            )
        pairs.append((row["source"], row["driving"]))
    return pairs


def random_pairs(names: Sequence[str], count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (source, driving) pairs of different videos, reproducible for a seed."""
    if len(names) < 2:
        raise DatasetError("animation pairs need at least two videos.")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        a, b = rng.choice(len(names), size=2, replace=False)
        pairs.append((names[int(a)], names[int(b)]))
    return pairs


def write_pairs(path: Path, pairs: Sequence[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "driving"])
        writer.writerows(pairs)


class PairedDataset(Dataset):
    """Whole (source video, driving video) pairs for cross-identity animation evaluation."""

    def __init__(self, videos: FramesDataset, pairs: Sequence[tuple[str, str]]):
        if videos.is_train:
            raise DatasetError("paired evaluation reads whole videos; build the dataset with is_train=False.")
        self.videos = videos
        self.by_name = {video_name(p): p for p in videos.videos}
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source, driving = self.pairs[index]
        return {
            "source_video": read_video(self.by_name[source], self.videos.shape),
            "driving_video": read_video(self.by_name[driving], self.videos.shape),
            "source_name": source,
            "driving_name": driving,
        }
