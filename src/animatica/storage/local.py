"""Files in a folder under ANIMATICA_HOME (the embedded default)."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from animatica.storage.base import MissingFile, StorageError, validate_key

CHUNK = 256 * 1024


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / validate_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"invalid storage key {key!r}")
        return path

    def put_file(self, key: str, source: Path) -> None:
        self._write(self._path(key), source)

    def _write(self, target: Path, source: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Copy next to the target and rename, so a reader never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def copy(self, src_key: str, dst_key: str) -> None:
        source = self._path(src_key)
        if not source.is_file():
            raise MissingFile(f"The stored file {src_key} is missing.")
        self._write(self._path(dst_key), source)

    def get_file(self, key: str, destination: Path) -> None:
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"The stored file {key} is missing.")
        shutil.copyfile(path, destination)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"The stored file {key} is missing.") from exc

    def read_range(self, key: str, start: int, end: int) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise StorageError(f"The stored file {key} is missing.") from exc
        return _chunks(handle, start, end)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Drop emptied per-job folders so the store does not fill with empty directories.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"The storage folder {self.root} cannot be created: {exc}.") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"The storage folder {self.root} is not writable.")


def _chunks(handle: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    with handle as stream:
        stream.seek(start)
        remaining = end - start + 1
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
