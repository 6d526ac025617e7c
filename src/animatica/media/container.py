"""Opening input files by their content, with one clear error for each way a file can be unusable.

FFmpeg opens almost anything: a text file becomes an ANSI-art "video" and an HTML page named
``.png`` goes to the image-sequence reader. So only the container formats listed here are taken
as videos, and files that are plainly text are recognised first, to tell the user what they
actually gave instead of failing later with a decoder error.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import av.container
import av.video.stream

from animatica.errors import MediaError

# FFmpeg demuxer names (as reported by ``container.format.name``) accepted as videos.
VIDEO_FORMATS = frozenset(
    {
        "mov,mp4,m4a,3gp,3g2,mj2",  # mp4, mov, m4v
        "matroska,webm",  # mkv, webm
        "avi",
        "gif",
        "mpegts",
        "mpeg",
        "flv",
        "asf",  # wmv
        "ogg",
    }
)

SUPPORTED = "a JPG/PNG/WebP image or an MP4/MOV/AVI/WebM/GIF/MKV video"

_SNIFF_BYTES = 2048
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<svg")


def check_file(path: Path) -> None:
    """Refuse paths that are missing, not regular files, or empty, before any decoder sees them."""
    if not path.exists():
        raise MediaError(f"{path} does not exist; check the path.")
    if not path.is_file():
        raise MediaError(f"{path} is not a regular file; give an image or a video file.")
    if path.stat().st_size == 0:
        raise MediaError(f"{path} is empty (0 bytes); the copy or upload probably failed, provide it again.")


def sniff_text(path: Path) -> str | None:
    """Say what kind of text a file is ("an HTML page", "a text file"), or None for binary data.

    Every supported image and video format starts with binary magic bytes, so a file whose
    first bytes are printable text cannot be media; the usual culprit is an error page saved
    under the media's name by a failed download.
    """
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sniffed block is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    printable = sum(ch.isprintable() or ch in "\r\n\t\f" for ch in text)
    if printable < 0.95 * len(text):
        return None
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if any(marker in lowered[:512] for marker in _HTML_MARKERS):
        return "an HTML page (probably an error page saved by a failed download)"
    return "a text file"


def not_media_error(path: Path) -> MediaError:
    """The error for a file that no accepted decoder could identify."""
    kind = sniff_text(path)
    if kind is not None:
        return MediaError(f"{path} is {kind}, not an image or video; provide {SUPPORTED}.")
    return MediaError(
        f"{path} is not a readable image or video (corrupt or unsupported); provide {SUPPORTED}."
    )


def open_video(path: Path) -> av.container.InputContainer:
    """Open ``path`` as a video container of an accepted format that has a video stream.

    The caller owns (and must close) the returned container. Every FFmpeg failure becomes a
    ``MediaError`` worded for the user.
    """
    check_file(path)
    if sniff_text(path) is not None:
        raise not_media_error(path)
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        kind = _indexed_kind(path)
        if kind is not None:
            raise MediaError(
                f"{path} is an incomplete {kind} (its index is missing, the file was probably cut "
                "short); copy or download it again."
            ) from exc
        raise not_media_error(path) from exc
    try:
        if container.format.name not in VIDEO_FORMATS:
            raise not_media_error(path)
        if not container.streams.video:
            what = "it holds only audio" if container.streams.audio else "it holds no audio or video at all"
            raise MediaError(f"{path} has no video stream ({what}); provide a file that contains video.")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise MediaError(f"{path} uses a video codec this build cannot decode; convert it to H.264 MP4.")
    except BaseException:
        container.close()
        raise
    return container


def _indexed_kind(path: Path) -> str | None:
    """Name MP4/MOV and AVI files, whose refusal by FFmpeg almost always means a cut-short copy.

    Both normally write their index (``moov``, ``idx1``) last, so a partial copy has the media
    data but no index; worth its own message because the fix (copy again) is so specific.
    """
    with path.open("rb") as handle:
        head = handle.read(12)
    if head[4:8] == b"ftyp":
        return "MP4/MOV"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


def frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's nominal frame rate, kept as an exact fraction (e.g. 30000/1001)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate.numerator, rate.denominator)
    return None


def declared_end(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> tuple[float | None, bool]:
    """When the video should end (seconds on the container clock) and whether that is per-stream.

    MP4/MOV/AVI/GIF give the video stream's own duration. Matroska gives only a container
    duration (the longest stream) unless the muxer wrote a ``DURATION`` tag per track, which
    FFmpeg does. A container-wide end may belong to the audio, so the caller must compare it
    with the end of all streams, not of the video alone.
    """
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    if stream.duration:
        return start + float(stream.duration * stream.time_base), True
    tag = _parse_clock(stream.metadata.get("DURATION") or stream.metadata.get("duration"))
    if tag is not None:
        return start + tag, True
    if container.duration:
        container_start = container.start_time / av.time_base if container.start_time is not None else 0.0
        return container_start + container.duration / av.time_base, False
    return None, False


_CLOCK = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


def _parse_clock(value: str | None) -> float | None:
    """Parse Matroska's ``HH:MM:SS.nnnnnnnnn`` duration tags."""
    if not value:
        return None
    match = _CLOCK.match(value.strip())
    if match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def rotation_quarters(degrees: float) -> int:
    """Counter-clockwise quarter turns (for ``np.rot90``) that put a frame upright.

    Phones store portrait video as landscape frames plus a display matrix; FFmpeg reports its
    angle counter-clockwise, and players rotate by that angle. Angles that are not multiples of
    90° do not occur in practice and are rounded.
    """
    return round(degrees / 90.0) % 4
