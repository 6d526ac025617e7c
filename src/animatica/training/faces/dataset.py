"""Write the synthetic faces dataset: clips of people, their parameters, cross-identity truth.

Layout (see the README's "Synthetic faces" section): ``train/<person>#<clip>/`` and
``test/<person>#<clip>/`` frame folders, ``params/<split>/<person>#<clip>.json`` with every
frame's expression, pose and 68 landmarks, ``cross/<A>__<B>#<clip>/`` with test person A
moving like test clip ``B#clip`` (plus ``cross/index.json``) and ``dataset.json``.

Every clip is a pure function of the seed and its names: a person's identity comes from
``(seed, split, person)``, a clip's scene and motion from ``(seed, split, person, clip)``, so any
worker can render any clip, the files do not depend on the number of workers, and the test
people (their own branch of the seed) never appear in training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from animatica.training.errors import DatasetError
from animatica.training.faces.params import IDENTITY, MOTION, sample_identity, sample_motion, sample_scene
from animatica.training.faces.render import background, render_frame
from animatica.training.synth import run_jobs, staged_folder

_SPLIT_KEYS = {"train": 0, "test": 1}
_IDENTITY, _SCENE, _MOTION = 0, 1, 2
SIZES = (64, 128, 256)
VERSION = 1
# 64 px faces (about 32 px wide) are below the HOG detector's window: they are measured enlarged.
DETECTION_UPSCALE = {64: 4}


@dataclass(frozen=True)
class Person:
    split: str
    index: int  # within the split: the seed branch
    name: str  # unique across splits


def person_names(people: int, test_people: int) -> tuple[list[Person], list[Person]]:
    """Training people ``p0000``... then test people, numbered on so that no name is shared."""
    train = [Person("train", i, f"p{i:04d}") for i in range(people)]
    test = [Person("test", i, f"p{people + i:04d}") for i in range(test_people)]
    return train, test


def identity_of(seed: int, person: Person) -> dict[str, float]:
    return sample_identity(np.random.default_rng([seed, _SPLIT_KEYS[person.split], person.index, _IDENTITY]))


def scene_of(seed: int, person: Person, clip: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, _SPLIT_KEYS[person.split], person.index, _SCENE, clip])
    return sample_scene(rng)


def motion_of(seed: int, person: Person, clip: int, frames: int) -> list[dict[str, float]]:
    rng = np.random.default_rng([seed, _SPLIT_KEYS[person.split], person.index, _MOTION, clip])
    return sample_motion(rng, frames)


def render_clip(
    identity: dict[str, float], scene: dict[str, float], motion: list[dict[str, float]], size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (F, size, size, 3) uint8 and landmarks (F, 68, 2) of one person moving through ``motion``."""
    backdrop = background(scene, size)
    rendered = [render_frame(identity, scene, frame, size, backdrop) for frame in motion]
    return np.stack([r[0] for r in rendered]), np.stack([r[1] for r in rendered])


@dataclass(frozen=True)
class _Job:
    out: Path
    folder: str  # relative clip folder, e.g. "train/p0003#c01"
    params: str  # relative params file
    seed: int
    person: Person  # whose face and scene (clip ``scene_clip``)
    scene_clip: int
    driver: Person  # whose motion (clip ``motion_clip``)
    motion_clip: int
    size: int
    frames: int


def _write(job: _Job) -> None:
    identity = identity_of(job.seed, job.person)
    scene = scene_of(job.seed, job.person, job.scene_clip)
    motion = motion_of(job.seed, job.driver, job.motion_clip, job.frames)
    frames, landmarks = render_clip(identity, scene, motion, job.size)
    folder = job.out / job.folder
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.png", compress_level=1)
    record = {
        "person": job.person.name,
        "identity": identity,
        "frames": motion,
        "landmarks": np.round(landmarks.astype(np.float64), 3).tolist(),
    }
    if job.driver != job.person:
        record["driving_person"] = job.driver.name
    params = job.out / job.params
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(json.dumps(record, separators=(",", ":")))


def _measure(root: Path, jobs: list[_Job], frames: int, size: int, count: int) -> dict[str, object]:
    """Detection rate and landmark error of the face toolkit on up to ``count`` test frames."""
    from animatica.training.faces.detection import measure

    picks = [
        (job, index) for job in jobs if job.folder.startswith("test/") for index in sorted({0, frames // 2})
    ][:count]

    def pairs():
        for job, index in picks:
            record = json.loads((root / job.params).read_text())
            image = np.asarray(Image.open(root / job.folder / f"{index:05d}.png").convert("RGB"))
            yield image, np.asarray(record["landmarks"][index])

    upscale = DETECTION_UPSCALE.get(size, 1)
    return {**measure(pairs(), upscale=upscale).as_dict(), "upscale": upscale, "detector": "dlib HOG"}


def _clip_name(clip: int) -> str:
    return f"c{clip:02d}"


def _jobs(
    staging: Path,
    seed: int,
    train: list[Person],
    test: list[Person],
    clips_per_person: int,
    size: int,
    frames: int,
) -> tuple[list[_Job], list[dict[str, str]]]:
    """Every clip to render (each person's own, then each test person moving like each other test
    person's clips) and the cross-identity pairs of ``cross/index.json``."""
    jobs: list[_Job] = []
    for split, group in (("train", train), ("test", test)):
        for person in group:
            for clip in range(clips_per_person):
                name = f"{person.name}#{_clip_name(clip)}"
                jobs.append(
                    _Job(staging, f"{split}/{name}", f"params/{split}/{name}.json", seed, person, clip,
                         person, clip, size, frames)
                )  # fmt: skip
    pairs = []
    for source in test:
        for driver in test:
            if driver == source:
                continue
            for clip in range(clips_per_person):
                truth = f"cross/{source.name}__{driver.name}#{_clip_name(clip)}"
                # The source photo is the person's first clip's first frame: same scene.
                jobs.append(
                    _Job(staging, truth, f"params/{truth}.json", seed, source, 0, driver, clip, size, frames)
                )
                pairs.append(
                    {
                        "source": f"test/{source.name}#{_clip_name(0)}/00000.png",
                        "source_person": source.name,
                        "driving": f"test/{driver.name}#{_clip_name(clip)}",
                        "driving_person": driver.name,
                        "truth": truth,
                    }
                )
    return jobs, pairs


def write_faces_dataset(
    out: Path,
    people: int,
    clips_per_person: int,
    seed: int,
    size: int = 64,
    frames: int = 32,
    test_people: int | None = None,
    workers: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    measure_detection: int = 0,
) -> Path:
    """Render the dataset into ``out`` (a new or empty folder) and return it.

    ``people`` training people and ``test_people`` held-out ones (default: a tenth, at least 2,
    so that cross-identity pairs exist), ``clips_per_person`` clips each of ``frames`` frames at
    ``size`` pixels. Written to a hidden sibling folder first and renamed at the end, so an
    interrupted run leaves nothing half-written. With ``measure_detection`` > 0, the face
    toolkit's detection rate and landmark error on that many test frames (first and middle frame
    of each test clip) go into ``dataset.json`` under ``face_detection``.
    """
    out = Path(out)
    n_test = max(2, people // 10) if test_people is None else test_people
    if people < 1 or clips_per_person < 1:
        raise DatasetError(
            f"--people and --clips-per-person must be at least 1 (got {people}, {clips_per_person})."
        )
    if n_test < 0:
        raise DatasetError(f"--test-people cannot be negative, got {n_test}.")
    if size not in SIZES:
        raise DatasetError(f"--size must be one of {', '.join(map(str, SIZES))} for faces, got {size}.")
    if frames < 2:
        raise DatasetError(f"clips need at least 2 frames, got {frames}.")
    if workers < 1:
        raise DatasetError(f"--workers must be at least 1, got {workers}.")
    if clips_per_person > 100 or people + n_test > 10_000:
        raise DatasetError(
            "at most 100 clips per person and 10000 people in all (the names have fixed width)."
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"{out} already exists and is not an empty folder; choose a new --out folder.")
    train, test = person_names(people, n_test)
    with staged_folder(out) as staging:
        jobs, pairs = _jobs(staging, seed, train, test, clips_per_person, size, frames)
        for split in ("train", "test", "cross"):
            (staging / split).mkdir(parents=True)
        run_jobs(_write, jobs, workers, 4, on_progress)
        (staging / "cross" / "index.json").write_text(json.dumps({"pairs": pairs}, indent=1))
        meta = {
            "kind": "faces",
            "version": VERSION,
            "seed": seed,
            "size": size,
            "frames": frames,
            "people": people,
            "test_people": n_test,
            "clips_per_person": clips_per_person,
            "parameters": list(MOTION),
            "identity_parameters": list(IDENTITY),
            "units": {"yaw": "degrees", "pitch": "degrees", "roll": "degrees", "landmarks": "pixels"},
            "fps": 25,
        }
        if measure_detection > 0 and test:
            meta["face_detection"] = _measure(staging, jobs, frames, size, measure_detection)
        (staging / "dataset.json").write_text(json.dumps(meta, indent=1))
    return out
