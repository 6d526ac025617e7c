"""The content checks of an upload: it is judged by what it holds, never by its name or declared type.

A source must decode as a JPEG, PNG or WebP picture and a driving clip as an MP4/MOV, AVI,
WebM/Matroska or GIF video. Files carrying markup or script (an HTML page named ``.jpg``, a
picture with a page appended after its end, the classic polyglot) are refused, and accepted
pictures are decoded the way the command line decodes them and re-encoded to PNG, so nothing
but pixels is ever stored. The user's file name is kept only as a sanitised label.

Limits are judged on what decoding will meet, not on what a header claims: a picture's size is
read from its header before any pixel is decoded, and a clip's length is counted on its packets
(cheap: no decoding), because a container's duration is metadata anyone can edit. Besides the
user's plan, every check obeys the server's ``MediaLimits``, which its caller passes in.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import av
from PIL import Image

from animatica.errors import MediaError
from animatica.media.image import decode_picture
from animatica.media.limits import MediaLimits
from animatica.media.probe import TooManyPixels, count_packets, open_image, probe_video, upright_size
from animatica.service.errors import Invalid, UnsupportedMedia
from animatica.service.plans import Plan

IMAGE_FORMATS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
VIDEO_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2": "mp4", "avi": "avi", "matroska,webm": "webm", "gif": "gif"}
VIDEO_NAMES = "an MP4, MOV, AVI, WebM or GIF video"
# The rate animations are written at when a video declares none (as the pipeline does).
DEFAULT_RATE = 25.0
# A nominal rate a hair over a plan's limit (30000/1001 against 30, a variable-rate average) passes.
FPS_TOLERANCE = 1.01
_MARKUP = (b"<html", b"<!doctype", b"<script", b"<svg", b"<iframe", b"<body", b"<?php", b"javascript:")
_SCAN_CHUNK = 1024 * 1024


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
    width: int  # as stored: upright, and scaled down to the plan's side when it was larger
    height: int
    note: str | None = None  # what was done to the picture, for the job to tell its owner


@dataclass(frozen=True)
class DrivingVideo:
    path: Path
    extension: str
    width: int
    height: int
    duration: float
    fps: float | None
    frames: int  # counted on the packets, whatever the header says
    max_frames: int  # the most frames an animation of it may decode: the limit in frames at its rate


def _media_error(error: MediaError, path: Path, label: str) -> Invalid:
    return Invalid(str(error).replace(str(path), label))


def validate_image(path: Path, label: str, plan: Plan, normalized: Path, limits: MediaLimits) -> SourceImage:
    """Check a source picture and write it, decoded and fitted to the plan, as PNG to `normalized`.

    The size in the header is judged against the plan (and the server's ``limits``) before a
    single pixel is decoded, so a small file claiming a huge picture costs nothing. A picture
    within that but wider than the plan's side is scaled down to it, and the returned note says so.
    """
    check_no_markup(path, label)
    try:
        image = open_image(path, limits)
    except TooManyPixels as error:
        raise Invalid(f"{label} has far more pixels than any plan accepts; scale it down first.") from error
    except (MediaError, Image.UnidentifiedImageError) as error:
        raise UnsupportedMedia(f"{label} is not a JPG, PNG or WebP picture; upload one of those.") from error
    with image:
        image_format = image.format or ""
        if image_format not in IMAGE_FORMATS:
            raise UnsupportedMedia(f"{label} is a {image_format} picture; upload a JPG, PNG or WebP one.")
        width, height = upright_size(image)
        limit = min(plan.max_source_pixels, limits.max_image_pixels)
        if width * height > limit:
            raise Invalid(
                f"{label} is {width}x{height} ({width * height / 1e6:.1f} megapixels); your plan accepts "
                f"pictures of up to {limit / 1e6:g} megapixels, scale it down and upload it again."
            )
        check_image_end(path, image_format, label)
        try:
            pixels = decode_picture(image, path, max_side=plan.max_side)
        except MediaError as error:
            raise _media_error(error, path, label) from error
    Image.fromarray(pixels).save(normalized, format="PNG")
    stored_height, stored_width = pixels.shape[:2]
    note = None
    if (stored_width, stored_height) != (width, height):
        note = (
            f"The source picture was {width}x{height}; it was scaled down to {stored_width}x{stored_height}, "
            f"the largest your plan animates ({plan.max_side} px per side)."
        )
    return SourceImage(normalized, stored_width, stored_height, note)


def frame_limit(seconds: float, fps: float | None) -> int:
    """A length limit in frames at the clip's own rate, the rate its animation is written at.

    One frame of slack absorbs the rounding of variable-rate clips, whose nominal rate is an
    average: a clip that lasts the limit must not miss it by its last frame.
    """
    return math.ceil(seconds * (fps or DEFAULT_RATE)) + 1


def validate_video(
    path: Path, label: str, plan: Plan, limits: MediaLimits, max_seconds: float | None = None
) -> DrivingVideo:
    """Check a driving clip's container, decodability, length and size, within the plan and ``limits``.

    The length is judged twice: on the duration the container declares and on the frames its
    packets hold, so neither a lying header nor a missing one gets a longer clip through.
    """
    check_no_markup(path, label)
    try:
        with av.open(str(path)) as container:
            container_format = container.format.name
    except (av.FFmpegError, OSError, ValueError) as error:
        raise UnsupportedMedia(f"{label} is not {VIDEO_NAMES}; upload one of those.") from error
    extension = VIDEO_FORMATS.get(container_format)
    if extension is None:
        raise UnsupportedMedia(f"{label} is not {VIDEO_NAMES}; upload one of those.")
    try:
        info = probe_video(path, limits)
        counted = count_packets(path)
    except MediaError as error:
        raise _media_error(error, path, label) from error
    limit = plan.max_duration_seconds if max_seconds is None else min(max_seconds, plan.max_duration_seconds)
    rate = info.fps or DEFAULT_RATE
    frames = max(info.frame_count or 0, counted.frames)
    duration = info.duration or counted.seconds or frames / rate
    if duration > limit:
        raise Invalid(f"{label} lasts {duration:.1f} s; at most {limit:g} s is allowed here, trim the clip.")
    max_frames = frame_limit(limit, info.fps)
    if frames > max_frames:
        raise Invalid(
            f"{label} lasts {frames / rate:.1f} s ({frames} frames at {rate:g} fps); at most {limit:g} s "
            "is allowed here, trim the clip."
        )
    if max(info.width, info.height) > plan.max_side:
        raise Invalid(
            f"{label} is {info.width}x{info.height}; your plan allows up to {plan.max_side} px per side."
        )
    if info.fps is not None and info.fps > plan.max_fps * FPS_TOLERANCE:
        raise Invalid(
            f"{label} runs at {info.fps:.3g} fps; your plan allows up to {plan.max_fps:g} fps, export it "
            f"at {plan.max_fps:g} fps or less and upload it again."
        )
    return DrivingVideo(path, extension, info.width, info.height, duration, info.fps, frames, max_frames)
