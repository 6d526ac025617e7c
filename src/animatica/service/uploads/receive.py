"""Receiving an upload: its bytes streamed to disk under a size limit, its name reduced to a label.

The client's file name is never used as a path; it survives only as a sanitised label for
messages and listings.
"""

import re
import unicodedata
from pathlib import Path
from typing import BinaryIO

from animatica.service.errors import Invalid, TooLarge

_CHUNK = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def sanitize_filename(name: str | None, fallback: str) -> str:
    """A display label from a client file name: no folders, no control or odd characters."""
    if not name:
        return fallback
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"\.{2,}", ".", base)
    return base[:100] or fallback


def receive(stream: BinaryIO, destination: Path, max_bytes: int, label: str) -> int:
    """Copy an upload to disk, refusing it as soon as it passes `max_bytes`; returns its size."""
    written = 0
    with destination.open("wb") as out:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise TooLarge(
                    f"{label} is larger than {max_bytes // (1024 * 1024)} MB; upload a smaller file."
                )
            out.write(chunk)
    if written == 0:
        raise Invalid(f"{label} is empty; choose the file again.")
    return written
