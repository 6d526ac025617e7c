"""Decoding inputs into uint8 RGB arrays: one still image, or a stream of frames in constant memory.

Videos are decoded one frame at a time and each frame is handed on before the next one is
decoded, so a three-hour video costs the same memory as a three-second one. A file that turns
out to be damaged part-way raises ``MediaError`` naming the frame, and one whose frames stop
before the length its header declares raises too, rather than ending early: a silently
shortened animation is worse than a clear failure. (A stream that declares no length at all,
such as a live-recorded Matroska file, can only be read as far as it goes.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from animatica.errors import MediaError
from animatica.media.container import declared_end, not_media_error, rotation_quarters
from animatica.media.image import decode_picture
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits
from animatica.media.probe import (
    MediaInfo,
    check_pixels,
    frame_files,
    open_image,
    probe,
    upright_size,
)
from animatica.media.seek import open_at


class FrameLimitExceeded(MediaError):
    """Decoding passed the frame limit its caller set: the video is longer than it was allowed to be.

    Its own class so that the caller, which knows why it set the limit, can say so in its words.
    """


def read_image(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read a picture as an upright ``(H, W, 3)`` uint8 RGB array, within ``limits``.

    The pixels are those the service's upload check stores for the same file (both go through
    ``animatica.media.image.decode_picture``): EXIF orientation applied, transparency over
    white, 16-bit grayscale scaled to 8 bits. Given a video or a frame folder, the first frame
    is returned, which lets a clip stand in for a photo.
    """
    info = probe(Path(path), limits)
    if info.kind == "image":
        return _load_still(info.path, limits)
    frames = iter_frames(info.path, limits=limits)
    try:
        return next(frames)
    finally:
        frames.close()


def _load_still(path: Path, limits: MediaLimits) -> np.ndarray:
    try:
        image = open_image(path, limits)
    except Image.UnidentifiedImageError as exc:  # a later frame of a folder, or replaced since probed
        raise not_media_error(path) from exc
    with image:
        check_pixels(path, *upright_size(image), limits)
        return decode_picture(image, path)


def iter_frames(
    path: Path, start: int = 0, max_frames: int | None = None, *, limits: MediaLimits = DEFAULT_LIMITS
) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or a PNG-frame folder as ``(H, W, 3)`` uint8 RGB arrays.

    The input is probed first, so a truncated or unusable file fails before the first frame.
    Video frames are upright (the display rotation is applied). Every frame of a folder must
    have the size of its first frame. Decoding errors raise ``MediaError`` naming the file and
    the frame index; a still image is a ``MediaError`` too (use ``read_image``).

    ``start`` skips to that frame index without decoding the video from its beginning where the
    file allows it (see ``animatica.media.seek``); the frames are exactly those of
    ``list(iter_frames(path))[start:]``, and a start past the end yields nothing.

    ``max_frames`` is the caller's own limit on the video's length, counted on the frames
    actually decoded (frame indices from the start of the video, whatever ``start`` is), not on
    what the header claims: decoding past it raises ``FrameLimitExceeded``. ``limits`` are the
    general guards (pixels per frame, frames per video), held on the probe and on decoding alike.
    """
    if start < 0:
        raise ValueError(f"start must be 0 or more, got {start}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    info = probe(Path(path), limits)
    if info.kind == "video":
        return _iter_video(info, start, max_frames, limits)
    if info.kind == "frames":
        return _iter_folder(info, start, max_frames, limits)
    raise MediaError(f"{info.path} is an image; a video or a folder of frames is needed here.")


def _iter_video(
    info: MediaInfo, start: int, max_frames: int | None, limits: MediaLimits
) -> Iterator[np.ndarray]:
    path = info.path
    limit = limits.max_video_frames
    with contextlib.ExitStack() as stack:
        container, stream, index, frames = open_at(path, start, stack)
        past_end = _past_declared_end(info, container, stream)
        reformatter = VideoReformatter()  # reused: setting one up per frame costs more than converting
        last_end: float | None = None
        try:
            for frame in frames:
                if max_frames is not None and index >= max_frames:
                    raise _over_limit(path, max_frames)
                if index >= limit:
                    raise MediaError(
                        f"{path} has more than {limit:,} frames; trim the video or raise "
                        "ANIMATICA_MAX_VIDEO_FRAMES."
                    )
                if frame.time is not None:
                    shown_for = frame.duration * frame.time_base if frame.duration and frame.time_base else 0
                    last_end = frame.time + float(shown_for)
                    if past_end is not None and frame.time > past_end:
                        raise MediaError(
                            f"{path} runs past the length its header declares (frame {index} shows at "
                            f"{frame.time:.2f} s); the file is damaged or was altered, export it again."
                        )
                if index >= start:
                    yield _upright_rgb(frame, reformatter)
                index += 1
        except av.FFmpegError as exc:
            raise MediaError(
                f"{path}: frame {index} could not be decoded ({exc.strerror or exc}); the video is damaged, "
                "export it again."
            ) from exc
        if index == 0:
            raise MediaError(f"{path} contains no decodable video frames; export the video again.")
        _check_reached_end(info, container, stream, last_end)


def _upright_rgb(frame: av.video.frame.VideoFrame, reformatter: VideoReformatter) -> np.ndarray:
    rgb = reformatter.reformat(frame, format="rgb24", src_color_range=frame.color_range or None)
    pixels = rgb.to_ndarray()
    quarters = rotation_quarters(frame.rotation)
    if quarters:
        pixels = np.ascontiguousarray(np.rot90(pixels, quarters))
    return pixels


def _over_limit(path: Path, max_frames: int) -> FrameLimitExceeded:
    return FrameLimitExceeded(
        f"{path} has more than {max_frames:,} frames, the most allowed here; trim the video."
    )


def _past_declared_end(
    info: MediaInfo, container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> float | None:
    """The time after which a frame proves that the header understates the video's length.

    The probe reads only the last seconds of a file and cannot do even that when the file does
    not seek; decoding sees every frame, so it stops a video whose frames outlast the end its
    own header declares instead of animating more than every limit was checked against.
    """
    end, own_end = declared_end(container, stream)
    if not own_end or end is None:
        return None
    frame_time = 1.0 / info.fps if info.fps else 0.04
    return end + max(3 * frame_time, 0.25)


def _check_reached_end(
    info: MediaInfo,
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    last: float | None,
) -> None:
    """Fail a video that ran out of data before the end its own header declares.

    The probe catches files cut short; this catches the rarer case of a stream that stops
    decoding early without an error, so the animation is never silently shorter.
    """
    end, own_end = declared_end(container, stream)
    if not own_end or end is None or last is None:
        return
    frame_time = 1.0 / info.fps if info.fps else 0.04
    if last < end - max(3 * frame_time, 0.25):
        raise MediaError(
            f"{info.path} is truncated (its frames stop at {last:.2f} s of {end:.2f} s); "
            "the file was cut short, copy or download it again."
        )


def _iter_folder(
    info: MediaInfo, start: int, max_frames: int | None, limits: MediaLimits
) -> Iterator[np.ndarray]:
    expected = (info.height, info.width)
    files = frame_files(info.path)
    if max_frames is not None and len(files) > max_frames:
        raise _over_limit(info.path, max_frames)
    for file in files[start:]:
        frame = _load_still(file, limits)
        if frame.shape[:2] != expected:
            raise MediaError(
                f"{file} is {frame.shape[1]}x{frame.shape[0]} but the folder's first frame is "
                f"{info.width}x{info.height}; all frames must have the same size."
            )
        yield frame


def iter_chunks(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Group frames into ``(N, H, W, 3)`` chunks of ``size`` frames (the last one may be shorter).

    Only one chunk is held at a time, so batching keeps the reader's constant memory.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    batch: list[np.ndarray] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)
