"""Cross-identity training items from a synthetic faces dataset, the truth rendered on the fly.

A model animated by latent differences, ``decode(z_photo + (z_t - z_0), photo)``, is asked at
use to move person A's photo with person B's clip. Trained only on each person's own clips it
can learn a latent that mixes identity into the motion, and then B's change moves A's face
wrongly. Here the item is exactly the use: A's neutral first frame, B's first frame and frame t,
and as the target A rendered with B's expression and pose at t (the renderer knows both, so the
target is exact). A share of items (``1 - cross_identity``) drives A with A's own clips.
Each item also marks the region the mouth moves (``mouth_region``), so that a loss can weigh it:
a few percent of the pixels, it is otherwise outvoted by the rest of the face.

Items are pure functions of ``(seed, epoch, index)`` like the frame datasets' (exact resume).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from animatica.training.datasets import ItemKey, item_rng, read_video
from animatica.training.errors import DatasetError
from animatica.training.faces.dataset import Person, scene_of
from animatica.training.faces.render import background, render_frame

_NAME = re.compile(r"^p(\d{4})#c(\d{2})$")
# The motion parameters an item reports (its driving frame's change since the first), over about
# their range: expression in [0, 1], angles in degrees.
MOTION_SCALES = {
    "mouth_open": 1.0, "smile": 1.0, "blink": 1.0, "brows": 1.0, "yaw": 25.0, "pitch": 15.0, "roll": 12.0,
}  # fmt: skip
# Landmarks (of the 68) that bound what opening the mouth changes: the lips, and the chin it drops.
MOUTH_LANDMARKS = [*range(48, 68), 7, 8, 9]


def mouth_region(landmark_sets: list[np.ndarray], size: int) -> torch.Tensor:
    """``(1, size, size)`` float, 1 inside the box around the mouth and chin landmarks of every set
    (pixels, centres at integers), widened by a 32nd of the image, else 0."""
    points = np.concatenate([np.asarray(lm, dtype=np.float64)[MOUTH_LANDMARKS] for lm in landmark_sets])
    pad = size / 32
    (x0, y0), (x1, y1) = points.min(0) - pad, points.max(0) + pad
    axis = np.arange(size)
    inside_x = (axis >= x0) & (axis <= x1)
    inside_y = (axis >= y0) & (axis <= y1)
    return torch.from_numpy(np.outer(inside_y, inside_x).astype(np.float32))[None]


def is_faces_dataset(root: Path) -> bool:
    """Whether ``root`` was written by ``animatica data synth --kind faces`` (its ``dataset.json``)."""
    try:
        meta = json.loads((Path(root) / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("kind") == "faces"


def _tensor(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float().div_(255.0)


class FacePairs(Dataset):
    """Items ``{source, initial, driving, target}``, float ``(3, S, S)`` in [0, 1], from the train split,
    ``motion``, the driving frame's change of the ``MOTION_SCALES`` parameters (scaled) since the
    initial frame, and ``mouth``, the ``mouth_region`` of the source photo and the target.

    ``len`` is the number of training people: an epoch gives every person one turn as the source.
    """

    def __init__(self, root: Path, size: int, cross_identity: float, seed: int = 0):
        self.root = Path(root)
        meta = json.loads((self.root / "dataset.json").read_text(encoding="utf-8"))
        if int(meta.get("size", 0)) != size:
            raise DatasetError(
                f"{root} holds {meta.get('size')}-pixel faces; this model trains on {size}: make a "
                f"dataset with --size {size}."
            )
        self.data_seed = int(meta["seed"])
        self.size = size
        self.cross_identity = float(cross_identity)
        self.seed = seed
        clips: dict[str, list[str]] = {}
        for folder in sorted((self.root / "train").iterdir()):
            match = _NAME.match(folder.name)
            if match and folder.is_dir():
                clips.setdefault(folder.name.split("#")[0], []).append(folder.name)
        if len(clips) < 2:
            raise DatasetError(f"{root}/train holds {len(clips)} people; cross-identity training needs 2.")
        self.people = sorted(clips)
        self.clips = clips

    def __len__(self) -> int:
        return len(self.people)

    @lru_cache(maxsize=1024)  # noqa: B019 - the dataset lives as long as its training run
    def _params(self, clip: str) -> dict[str, Any]:
        path = self.root / "params" / "train" / f"{clip}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DatasetError(f"the parameters of {clip} cannot be read from {path} ({exc})") from exc

    @lru_cache(maxsize=1024)  # noqa: B019
    def _backdrop(self, clip: str) -> np.ndarray:
        match = _NAME.match(clip)
        assert match is not None
        who = Person("train", int(match.group(1)), clip.split("#")[0])
        return background(scene_of(self.data_seed, who, int(match.group(2))), self.size)

    def _frames(self, clip: str, indices: list[int]) -> np.ndarray:
        return read_video(self.root / "train" / clip, (self.size, self.size), indices)

    def __getitem__(self, key: ItemKey) -> dict[str, torch.Tensor]:
        rng, index = item_rng(self.seed, key)
        person = self.people[index % len(self.people)]
        source_clip = self.clips[person][int(rng.integers(len(self.clips[person])))]
        driver = person
        if rng.random() < self.cross_identity:
            others = len(self.people) - 1
            driver = self.people[
                (self.people.index(person) + 1 + int(rng.integers(others))) % len(self.people)
            ]
        driving_clip = self.clips[driver][int(rng.integers(len(self.clips[driver])))]
        motion = self._params(driving_clip)["frames"]
        t = int(rng.integers(1, len(motion)))
        source = self._frames(source_clip, [0])[0]
        initial, driving = self._frames(driving_clip, [0, t])
        if driving_clip == source_clip:
            target, target_landmarks = driving, self._params(driving_clip)["landmarks"][t]
        else:
            match = _NAME.match(source_clip)
            assert match is not None
            who = Person("train", int(match.group(1)), person)
            scene = scene_of(self.data_seed, who, int(match.group(2)))
            identity = self._params(source_clip)["identity"]
            target, target_landmarks = render_frame(
                identity, scene, motion[t], self.size, self._backdrop(source_clip)
            )
        change = [(motion[t][name] - motion[0][name]) / scale for name, scale in MOTION_SCALES.items()]
        return {
            "motion": torch.tensor(change, dtype=torch.float32),
            "source": _tensor(source),
            "initial": _tensor(initial),
            "driving": _tensor(driving),
            "target": _tensor(target),
            "mouth": mouth_region([self._params(source_clip)["landmarks"][0], target_landmarks], self.size),
        }
