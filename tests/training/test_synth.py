"""Procedural data: layout, determinism per seed, held-out split, motion, atomic writing."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animatica.training import synth
from animatica.training.errors import DatasetError


def _frames(clip: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(clip.glob("*.png"))])


def test_layout_and_png_frames(tiny_data: Path) -> None:
    train = sorted(p.name for p in (tiny_data / "train").iterdir())
    test = sorted(p.name for p in (tiny_data / "test").iterdir())
    assert train == [f"clip{i:05d}" for i in range(6)]
    assert test == ["clip00000", "clip00001"]
    frames = _frames(tiny_data / "train" / "clip00000")
    assert frames.shape == (8, 32, 32, 3) and frames.dtype == np.uint8
    assert [p.name for p in sorted((tiny_data / "train" / "clip00000").iterdir())][:2] == [
        "00000.png",
        "00001.png",
    ]


def test_same_seed_same_pixels_other_seed_differs(tiny_data: Path, tmp_path: Path) -> None:
    again = synth.synthesize(tmp_path / "again", videos=6, seed=7, size=32, frames=8, test_videos=2)
    other = synth.synthesize(tmp_path / "other", videos=1, seed=8, size=32, frames=8, test_videos=0)
    first = _frames(tiny_data / "train" / "clip00003")
    assert np.array_equal(first, _frames(again / "train" / "clip00003"))
    assert not np.array_equal(
        _frames(tiny_data / "train" / "clip00000"), _frames(other / "train" / "clip00000")
    )


def test_worker_processes_write_the_same_files(tiny_data: Path, tmp_path: Path) -> None:
    done: list[tuple[int, int]] = []
    out = synth.synthesize(
        tmp_path / "parallel", videos=6, seed=7, size=32, frames=8, test_videos=2, workers=2,
        on_progress=lambda n, total: done.append((n, total)),
    )  # fmt: skip
    files = sorted(p.relative_to(tiny_data) for p in tiny_data.rglob("*.png"))
    assert files == sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert all((tiny_data / f).read_bytes() == (out / f).read_bytes() for f in files)
    assert done[-1] == (8, 8) and len(done) == 8


def test_test_split_is_not_a_copy_of_training_clips() -> None:
    train = synth.render_clip(3, "train", 0, size=32, frames=4)
    test = synth.render_clip(3, "test", 0, size=32, frames=4)
    assert np.abs(train.astype(int) - test.astype(int)).mean() > 10


def test_clips_move_and_backgrounds_vary() -> None:
    clips = [synth.render_clip(5, "train", i, size=48, frames=16) for i in range(6)]
    # Motion: later frames differ from the first (the no-motion baseline is not trivially perfect).
    motion = [np.abs(c[-1].astype(int) - c[0].astype(int)).mean() for c in clips]
    assert min(motion) > 1.0
    # Varied backgrounds: the corner colours differ across clips.
    corners = np.array([c[0, 0, 0] for c in clips], dtype=float)
    assert corners.std(axis=0).max() > 20


def test_refuses_non_empty_output(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        synth.synthesize(tmp_path / "out", videos=1, seed=0, size=16, frames=2)


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = synth.render_clip

    def flaky(*args: object, **kwargs: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(synth, "render_clip", flaky)
    with pytest.raises(OSError):
        synth.synthesize(tmp_path / "out", videos=3, seed=0, size=16, frames=2)
    assert list(tmp_path.iterdir()) == []


def test_rejects_bad_counts(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="at least 1"):
        synth.synthesize(tmp_path / "out", videos=0, seed=0)
    with pytest.raises(DatasetError, match="--workers must be at least 1"):
        synth.synthesize(tmp_path / "out", videos=1, seed=0, workers=0)
