"""The local backend's copy: a new key with the same bytes, made without reading them back out."""

from pathlib import Path

import pytest

from animatica.storage.base import MissingFile
from animatica.storage.local import LocalStorage


def test_copy_makes_an_independent_file_under_the_new_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    data = bytes(range(256)) * 3000
    (tmp_path / "in.bin").write_bytes(data)
    storage.put_file("jobs/old/driving.mp4", tmp_path / "in.bin")
    storage.copy("jobs/old/driving.mp4", "jobs/new/driving.mp4")
    assert storage.size("jobs/new/driving.mp4") == len(data)
    storage.delete("jobs/old/driving.mp4")  # the copy outlives its original
    storage.get_file("jobs/new/driving.mp4", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    assert not (tmp_path / "store" / "jobs" / "old").exists()
    assert [p.name for p in (tmp_path / "store" / "jobs" / "new").iterdir()] == [
        "driving.mp4"
    ]  # no temp left


def test_copying_a_missing_or_outside_key_fails_and_writes_nothing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    with pytest.raises(MissingFile, match="missing"):
        storage.copy("jobs/gone/source.png", "jobs/new/source.png")
    assert not (tmp_path / "store" / "jobs" / "new").exists()
    (tmp_path / "in.bin").write_bytes(b"x")
    storage.put_file("jobs/a/source.png", tmp_path / "in.bin")
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.copy("jobs/a/source.png", "../outside.png")
