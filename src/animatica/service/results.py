"""Serving a stored result with HTTP Range support, from any storage backend."""

import re
from pathlib import PurePosixPath

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from animatica.service.errors import ServiceError
from animatica.storage.base import Storage

# The result types jobs write; spelled out rather than read from the system's MIME table, whose
# contents vary from one machine to another.
MEDIA_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ServiceError):
    status_code = 416


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single byte range, None for the whole file.

    Several ranges at once are answered with the whole file, which RFC 9110 allows.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise RangeNotSatisfiable("The requested range is empty.")
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiable(f"The requested range is outside the file's {size} bytes.")
    return start, end


def download(job_id: str, key: str) -> tuple[str, str]:
    """The file name a browser saves a job's result under, and its media type, from the stored key:
    every kind of job names its result file (an animation's ``result.mp4``, a picture's ``.png``)."""
    suffix = PurePosixPath(key).suffix.lower()
    media_type = MEDIA_TYPES.get(suffix, "application/octet-stream")
    return f"animatica-{job_id}{suffix}", media_type


def serve_file(request: Request, storage: Storage, key: str, filename: str, media_type: str) -> Response:
    size = storage.size(key)
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers = {"Accept-Ranges": "bytes", "Content-Disposition": f'attachment; filename="{filename}"'}
    if wanted is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(storage.read_range(key, 0, size - 1), media_type=media_type, headers=headers)
    start, end = wanted
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        storage.read_range(key, start, end), status_code=206, media_type=media_type, headers=headers
    )
