"""What an input file is, identified by its content, and whether it can be used at all.

``probe`` does every check that can fail cheaply (format, decodability of the first frame,
size limits, a truncated end) so that a job refuses bad input before any model is loaded and
before any output is written.
"""

from __future__ import annotations

import re
import struct
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import av.container
import av.video.stream
from PIL import Image

from animatica.errors import MediaError
from animatica.media.container import (
    check_file,
    declared_end,
    frame_rate,
    not_media_error,
    open_video,
    rotation_quarters,
)
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits

MediaKind = Literal["image", "video", "frames"]

# Pillow formats read as still images. GIF is left to FFmpeg so that animated GIFs are videos.
# (Pillow's JPEG reader also opens the "MPO" JPEGs of cameras that embed a preview picture.)
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")

# What Pillow raises on damaged data (it uses all of these internally).
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error)

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF values that swap width and height


@dataclass(frozen=True)
class MediaInfo:
    """A usable input and its geometry and timing.

    ``width``/``height`` are those of the frames the reader yields: after EXIF orientation for
    images and after the display rotation for videos. ``frame_count`` is exact for images,
    frame folders and containers that index their frames (MP4, MOV, AVI, GIF); for others
    (Matroska/WebM, MPEG-TS) it is ``round(duration * fps)``, and ``frame_count_exact`` is False.
    ``fps`` is None for images and frame folders (they carry no timing); ``frame_rate`` is the
    same rate as an exact fraction, which is what an encoder should be given.
    """

    path: Path
    kind: MediaKind
    width: int
    height: int
    fps: float | None
    frame_count: int | None
    duration: float | None
    has_audio: bool
    frame_rate: Fraction | None = None
    frame_count_exact: bool = True


def probe(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Identify ``path`` as an image, a video or a folder of PNG frames and validate it.

    Raises ``MediaError`` for anything that cannot be animated: a missing, empty, corrupt,
    truncated or non-media file, a video without decodable frames, an image over
    ``limits.max_image_pixels`` (checked from the header, before decoding) or a video over
    ``limits.max_video_frames``.
    """
    path = Path(path)
    if path.is_dir():
        return probe_frames(path, limits)
    check_file(path)
    image = _probe_image_or_none(path, limits)
    if image is not None:
        return image
    return probe_video(path, limits)


def probe_image(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Probe a file that must be a still image."""
    path = Path(path)
    check_file(path)
    info = _probe_image_or_none(path, limits)
    if info is None:
        raise not_media_error(path)
    return info


def open_image(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> Image.Image:
    """Open an accepted still image lazily (header only), or raise ``MediaError`` if it is not one.

    Pillow's own decompression-bomb refusal (at twice its default limit) is reported like ours,
    naming ``limits``; its warning for merely large images is silenced because our limit decides.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path, formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(path, None, limits) from exc
    except Image.UnidentifiedImageError:
        raise
    except DECODE_ERRORS as exc:
        raise not_media_error(path) from exc


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) read from the header only, without decoding any pixels.

    Pillow's ``getexif`` on a PNG decodes the whole image to look for an ``eXIf`` chunk after
    the pixel data; that must not happen before the size check, so PNG orientation is taken
    only from an ``eXIf`` chunk placed before the pixels (where the specification puts it).
    """
    try:
        if image.format == "PNG":
            raw = image.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = image.getexif()
        value = exif.get(_EXIF_ORIENTATION, 1)
    except DECODE_ERRORS:
        return 1  # broken EXIF metadata: the pixels are still fine, show them as stored
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied."""
    width, height = image.size
    if orientation(image) in _TRANSPOSED_ORIENTATIONS:
        return height, width
    return width, height


class TooManyPixels(MediaError):
    """A picture (or video frame) whose header declares more pixels than may be decoded.

    Its own class so that a caller with its own limit (a plan) can word the refusal for its users.
    """


def check_pixels(path: Path, width: int, height: int, limits: MediaLimits = DEFAULT_LIMITS) -> None:
    """Refuse images (and video frames) with more pixels than ``limits.max_image_pixels``."""
    if width * height > limits.max_image_pixels:
        raise _too_many_pixels(path, (width, height), limits)


def _too_many_pixels(path: Path, size: tuple[int, int] | None, limits: MediaLimits) -> MediaError:
    limit = limits.max_image_pixels
    dims = f" is {size[0]}x{size[1]} pixels," if size else ""
    return TooManyPixels(
        f"{path}{dims} is larger than the limit of {limit:,} pixels (a possible decompression bomb); "
        "downscale it or raise ANIMATICA_MAX_IMAGE_PIXELS."
    )


def _probe_image_or_none(path: Path, limits: MediaLimits) -> MediaInfo | None:
    """Probe a still image, or return None when Pillow does not recognise the file."""
    try:
        image = open_image(path, limits)
    except Image.UnidentifiedImageError:
        return None
    with image:
        width, height = upright_size(image)
        check_pixels(path, width, height, limits)
        _verify_decodes(path, image)
    return MediaInfo(
        path=path,
        kind="image",
        width=width,
        height=height,
        fps=None,
        frame_count=1,
        duration=None,
        has_audio=False,
    )


def _verify_decodes(path: Path, image: Image.Image) -> None:
    """Decode the pixel data once so that truncated or corrupt images fail here, not mid-job.

    JPEG is decoded at 1/8 scale (the DCT allows it), which reads the whole bitstream at a
    fraction of the cost; other formats are small enough to decode fully.
    """
    if image.format in ("JPEG", "MPO"):
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
    try:
        image.load()
    except DECODE_ERRORS as exc:
        raise MediaError(
            f"{path} is a damaged or incomplete {image.format} image ({exc}); export or download it again."
        ) from exc


def probe_video(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Probe a file that must be a video: decode its first frame and check that its end is there."""
    path = Path(path)
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        first = _first_frame(path, container, stream)
        quarters = rotation_quarters(first.rotation)
        width, height = (first.height, first.width) if quarters % 2 else (first.width, first.height)
        check_pixels(path, width, height, limits)
        rate = frame_rate(stream)
        end, own_end = declared_end(container, stream)
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        duration = end - start if end is not None else None
        if stream.frames > 0:
            frame_count: int | None = stream.frames
            exact = True
        else:
            frame_count = round(duration * rate) if duration is not None and rate is not None else None
            exact = False
        limit = limits.max_video_frames
        if frame_count is not None and frame_count > limit:
            raise MediaError(
                f"{path} has {'' if exact else 'about '}{frame_count:,} frames, more than the limit of "
                f"{limit:,}; trim the video or raise ANIMATICA_MAX_VIDEO_FRAMES."
            )
        _check_complete(path, container, stream, end, own_end, rate)
        has_audio = bool(container.streams.audio)
    finally:
        container.close()
    return MediaInfo(
        path=path,
        kind="video",
        width=width,
        height=height,
        fps=float(rate) if rate is not None else None,
        frame_count=frame_count,
        duration=duration,
        has_audio=has_audio,
        frame_rate=rate,
        frame_count_exact=exact,
    )


def _first_frame(
    path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.FFmpegError as exc:
        raise MediaError(
            f"{path} could not be decoded ({exc.strerror or exc}); the video is damaged, export it again."
        ) from exc
    raise MediaError(f"{path} contains no decodable video frames; export the video again.")


def _check_complete(
    path: Path,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    end: float | None,
    own_end: bool,
    rate: Fraction | None,
) -> None:
    """Refuse a file whose packets stop well before, or go on well after, the end its header declares.

    A file cut short after its index (MP4 with the index in front, Matroska, WebM) opens and
    plays, just shorter; animating it would silently drop the tail. Seeking to the last
    keyframe and reading to the end of the file costs at most one group of pictures. GIF has no
    declared length, but a complete one ends with its trailer byte.

    Packets that go on past the declared end mean the header lies about the length (a Matroska
    ``Duration`` or ``DURATION`` tag is plain metadata anyone can edit). Every length-based limit
    is decided on the declared length, so such a file is refused rather than trusted; reading to
    its end here costs demuxing only, never decoding.
    """
    if container.format.name == "gif":
        with path.open("rb") as handle:
            handle.seek(-1, 2)
            if handle.read(1) != b"\x3b":
                raise _truncated(path, None, None)
        return
    if end is None:
        return
    frame_time = 1.0 / float(rate) if rate else 0.04
    tolerance = max(3 * frame_time, 0.25)
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    target = max(end - 2.0, start)  # always seek: decoding the first frame moved the read position
    try:
        container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
        last = _last_packet_end(container, stream, own_end)
    except av.FFmpegError:
        return  # not seekable: the reader still stops with an error if decoding fails
    if last is None or last < end - tolerance:
        raise _truncated(path, last, end)
    if last > end + tolerance:
        raise _overlong(path, last, end)


def _last_packet_end(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, video_only: bool
) -> float | None:
    streams = [stream] if video_only else list(container.streams.video) + list(container.streams.audio)
    last: float | None = None
    for packet in container.demux(streams):
        when = packet.pts if packet.pts is not None else packet.dts
        if when is None or packet.time_base is None:
            continue
        packet_end = float((when + (packet.duration or 0)) * packet.time_base)
        last = packet_end if last is None else max(last, packet_end)
    return last


def _overlong(path: Path, last: float, end: float) -> MediaError:
    return MediaError(
        f"{path} runs past the length its header declares (its data goes on to {last:.2f} s, the header "
        f"says {end:.2f} s); the file is damaged or was altered, export it again."
    )


@dataclass(frozen=True)
class PacketCount:
    """What demuxing a video stream to its end found: how many frames it holds and until when."""

    frames: int
    seconds: float | None  # from the stream's first timestamp to the end of its last packet


def count_packets(path: Path) -> PacketCount:
    """Count the packets of the video stream to the end of the file, without decoding any of them.

    Each video packet is one frame in every accepted format, so this is the frame count that
    decoding will meet, whatever the header claims, and it exists even for files that declare no
    length at all (a live-recorded WebM). It reads the whole file, so it suits inputs of bounded
    size (uploads); the probe itself only reads the last seconds.
    """
    container = open_video(Path(path))
    try:
        stream = container.streams.video[0]
        frames = 0
        first: float | None = None
        last: float | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker, not a frame
                frames += 1
                when = packet.pts if packet.pts is not None else packet.dts
                if when is None or packet.time_base is None:
                    continue
                start = float(when * packet.time_base)
                end = float((when + (packet.duration or 0)) * packet.time_base)
                first = start if first is None else min(first, start)
                last = end if last is None else max(last, end)
        except av.FFmpegError as exc:
            raise MediaError(
                f"{path} could not be read to its end ({exc.strerror or exc}); the video is damaged, "
                "export it again."
            ) from exc
    finally:
        container.close()
    seconds = last - first if first is not None and last is not None else None
    return PacketCount(frames, seconds)


def _truncated(path: Path, last: float | None, end: float | None) -> MediaError:
    where = (
        f" (its data stops at {last:.2f} s of {end:.2f} s)" if last is not None and end is not None else ""
    )
    return MediaError(f"{path} is truncated{where}; the file was cut short, copy or download it again.")


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[object, ...]:
    """Sort key that puts ``frame2.png`` before ``frame10.png`` (zero-padded names sort the same)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name))


def frame_files(folder: Path) -> list[Path]:
    """The PNG frames of a folder in playback order; hidden files are ignored."""
    files = [
        entry
        for entry in folder.iterdir()
        if entry.suffix.lower() == ".png" and not entry.name.startswith(".") and entry.is_file()
    ]
    return sorted(files, key=lambda entry: natural_key(entry.name))


def probe_frames(folder: Path, limits: MediaLimits = DEFAULT_LIMITS) -> MediaInfo:
    """Probe a folder of PNG frames: the first frame fixes the size every other frame must have."""
    folder = Path(folder)
    files = frame_files(folder)
    if not files:
        raise MediaError(
            f"{folder} is a folder without PNG frames; give an image, a video, "
            "or a folder of 00000.png… frames."
        )
    limit = limits.max_video_frames
    if len(files) > limit:
        raise MediaError(
            f"{folder} has {len(files):,} frames, more than the limit of {limit:,}; "
            "use fewer frames or raise ANIMATICA_MAX_VIDEO_FRAMES."
        )
    first = probe_image(files[0], limits)
    return MediaInfo(
        path=folder,
        kind="frames",
        width=first.width,
        height=first.height,
        fps=None,
        frame_count=len(files),
        duration=None,
        has_audio=False,
    )


def require_video(info: MediaInfo, role: str = "driving input") -> MediaInfo:
    """Refuse a still image where motion is needed; returns ``info`` for chaining."""
    if info.kind == "image":
        raise MediaError(f"{info.path} is an image; the {role} must be a video or a folder of frames.")
    return info


def require_image(info: MediaInfo, role: str = "source") -> MediaInfo:
    """Refuse a video or frame folder where one still picture is expected.

    ``read_image`` itself accepts videos (it takes their first frame); this check is for
    callers that want to be strict about it.
    """
    if info.kind != "image":
        what = "a video" if info.kind == "video" else "a folder of frames"
        raise MediaError(f"{info.path} is {what}; the {role} must be a single image (JPG, PNG or WebP).")
    return info
