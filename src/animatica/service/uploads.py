"""Uploads are judged by their content, never by their name or declared type.

A source must decode as a JPEG, PNG or WebP picture and a driving clip as an MP4/MOV, AVI or
WebM/Matroska video. Files carrying markup or script (an HTML page named ``.jpg``, a picture
with a page appended after its end, the classic polyglot) are refused, and accepted pictures
are re-encoded to PNG so nothing but pixels is ever stored. The user's file name is kept only
as a sanitised label.
"""

import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image, ImageOps

from animatica.errors import MediaError
from animatica.media.probe import probe_image, probe_video
from animatica.service.errors import Invalid, TooLarge, UnsupportedMedia
from animatica.service.plans import Plan

IMAGE_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
VIDEO_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "avi": "avi", "matroska,webm": "webm"}
_MARKUP = (b"<html", b"<!doctype", b"<script", b"<svg", b"<iframe", b"<body", b"<?php", b"javascript:")
_SCAN_CHUNK = 1024 * 1024
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
    """Copy an upload to disk, refusing it as soon as it passes `max_bytes`."""
    written = 0
    with destination.open("wb") as out:
        while chunk := stream.read(_SCAN_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise TooLarge(
                    f"{label} is larger than {max_bytes // (1024 * 1024)} MB; upload a smaller file."
                )
            out.write(chunk)
    if written == 0:
        raise Invalid(f"{label} is empty; choose the file again.")
    return written


def check_no_markup(path: Path, label: str) -> None:
    """Refuse files that carry HTML or script anywhere, a browser could be tricked into running it."""
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            window = (tail + chunk).lower()
            if any(marker in window for marker in _MARKUP):
                raise UnsupportedMedia(
                    f"{label} contains HTML or script, not just a picture or video; it was refused."
                )
            tail = chunk[-16:]


def check_image_end(path: Path, image_format: str, label: str) -> None:
    """Refuse data hidden after the end of a PNG, JPEG or WebP picture (polyglot files)."""
    data = path.read_bytes()
    end = {"PNG": _png_end, "JPEG": _jpeg_end, "MPO": None, "WEBP": _webp_end}.get(image_format)
    if end is None:
        return
    stop = end(data)
    if stop is None or data[stop:].strip(b"\x00\r\n\t ") != b"":
        raise UnsupportedMedia(
            f"{label} has extra data after the end of the picture; save it again as JPG or PNG."
        )


def _png_end(data: bytes) -> int | None:
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        position += 12 + length
        if kind == b"IEND":
            return position
    return None


def _jpeg_end(data: bytes) -> int | None:
    """Walk marker segments and entropy-coded data to the EOI marker."""
    position = 2
    size = len(data)
    while position + 2 <= size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xD9:
            return position + 2
        if marker == 0xFF:
            position += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        if position + 4 > size:
            return None
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        position += 2 + length
        if marker == 0xDA:
            # Scan data: runs until a marker other than stuffing (FF00) or a restart (FFD0-D7).
            while position + 1 < size:
                if (
                    data[position] == 0xFF
                    and data[position + 1] != 0x00
                    and not 0xD0 <= data[position + 1] <= 0xD7
                ):
                    break
                position += 1
    return None


def _webp_end(data: bytes) -> int | None:
    if len(data) < 12 or data[:4] != b"RIFF":
        return None
    return 8 + int.from_bytes(data[4:8], "little")


@dataclass(frozen=True)
class SourceImage:
    path: Path
    width: int
    height: int


@dataclass(frozen=True)
class DrivingVideo:
    path: Path
    extension: str
    width: int
    height: int
    duration: float
    fps: float | None


def _media_error(error: MediaError, path: Path, label: str) -> Invalid:
    return Invalid(str(error).replace(str(path), label))


def validate_image(path: Path, label: str, plan: Plan, normalized: Path) -> SourceImage:
    """Check a source picture and write it re-encoded as PNG to `normalized`."""
    check_no_markup(path, label)
    try:
        info = probe_image(path)
    except MediaError as error:
        raise UnsupportedMedia(f"{label} is not a JPG, PNG or WebP picture; upload one of those.") from error
    with Image.open(path) as image:
        image_format = image.format or ""
        if image_format not in IMAGE_FORMATS:
            raise UnsupportedMedia(f"{label} is a {image_format} picture; upload a JPG, PNG or WebP one.")
        check_image_end(path, image_format, label)
        if max(info.width, info.height) > plan.max_side:
            raise Invalid(
                f"{label} is {info.width}x{info.height}; your plan allows up to {plan.max_side} px per side."
            )
        upright = ImageOps.exif_transpose(image).convert("RGB")
        upright.save(normalized, format="PNG")
    return SourceImage(normalized, info.width, info.height)


def validate_video(path: Path, label: str, plan: Plan, max_seconds: float | None = None) -> DrivingVideo:
    """Check a driving clip's container, decodability, duration and size."""
    check_no_markup(path, label)
    try:
        with av.open(str(path)) as container:
            container_format = container.format.name
    except (av.FFmpegError, OSError, ValueError) as error:
        raise UnsupportedMedia(
            f"{label} is not an MP4, MOV, AVI or WebM video; upload one of those."
        ) from error
    extension = VIDEO_FORMATS.get(container_format)
    if extension is None:
        raise UnsupportedMedia(f"{label} is not an MP4, MOV, AVI or WebM video; upload one of those.")
    try:
        info = probe_video(path)
    except MediaError as error:
        raise _media_error(error, path, label) from error
    duration = info.duration or ((info.frame_count or 0) / info.fps if info.fps else 0.0)
    limit = plan.max_duration_seconds if max_seconds is None else min(max_seconds, plan.max_duration_seconds)
    if duration > limit:
        raise Invalid(f"{label} lasts {duration:.1f} s; at most {limit:g} s is allowed here, trim the clip.")
    if max(info.width, info.height) > plan.max_side:
        raise Invalid(
            f"{label} is {info.width}x{info.height}; your plan allows up to {plan.max_side} px per side."
        )
    return DrivingVideo(path, extension, info.width, info.height, duration, info.fps)


def copy_stream(source: BinaryIO, destination: Path) -> None:
    with destination.open("wb") as out:
        shutil.copyfileobj(source, out)
