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
from animatica.media.probe import (
    DECODE_ERRORS,
    MediaInfo,
    check_pixels,
    frame_files,
    open_image,
    orientation,
    probe,
    upright_size,
)
from animatica.media.seek import open_at
from animatica.settings import get_settings

_WHITE = (255, 255, 255, 255)
# EXIF orientation -> the transpose that makes the picture upright (1 needs none).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def read_image(path: Path) -> np.ndarray:
    """Read a picture as an upright ``(H, W, 3)`` uint8 RGB array.

    EXIF orientation is applied. Transparent pixels are composited on white (a cut-out portrait
    on white looks like a photo; on black its edges would turn into a dark halo). Grayscale,
    palette, CMYK and 16-bit images are converted to 8-bit RGB. Given a video or a frame folder,
    the first frame is returned, which lets a clip stand in for a photo.
    """
    info = probe(Path(path))
    if info.kind == "image":
        return _load_still(info.path)
    frames = iter_frames(info.path)
    try:
        return next(frames)
    finally:
        frames.close()


def _load_still(path: Path) -> np.ndarray:
    try:
        image = open_image(path)
    except Image.UnidentifiedImageError as exc:  # a later frame of a folder, or replaced since probed
        raise not_media_error(path) from exc
    with image:
        check_pixels(path, *upright_size(image))
        try:
            turn = _TRANSPOSE.get(orientation(image))
            image.load()
            return _to_rgb(image if turn is None else image.transpose(turn))
        except DECODE_ERRORS as exc:
            raise MediaError(
                f"{path} is a damaged or incomplete image ({exc}); export or download it again."
            ) from exc


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit (or float) grayscale: scale the full range down to 8 bits instead of clipping.
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(np.rint(values * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        image = Image.alpha_composite(background, rgba)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def iter_frames(path: Path, start: int = 0) -> Iterator[np.ndarray]:
    """Yield the frames of a video file or a PNG-frame folder as ``(H, W, 3)`` uint8 RGB arrays.

    The input is probed first, so a truncated or unusable file fails before the first frame.
    Video frames are upright (the display rotation is applied). Every frame of a folder must
    have the size of its first frame. Decoding errors raise ``MediaError`` naming the file and
    the frame index; a still image is a ``MediaError`` too (use ``read_image``).

    ``start`` skips to that frame index without decoding the video from its beginning where the
    file allows it (see ``animatica.media.seek``); the frames are exactly those of
    ``list(iter_frames(path))[start:]``, and a start past the end yields nothing.
    """
    if start < 0:
        raise ValueError(f"start must be 0 or more, got {start}")
    info = probe(Path(path))
    if info.kind == "video":
        return _iter_video(info, start)
    if info.kind == "frames":
        return _iter_folder(info, start)
    raise MediaError(f"{info.path} is an image; a video or a folder of frames is needed here.")


def _iter_video(info: MediaInfo, start: int) -> Iterator[np.ndarray]:
    path = info.path
    limit = get_settings().max_video_frames
    with contextlib.ExitStack() as stack:
        container, stream, index, frames = open_at(path, start, stack)
        reformatter = VideoReformatter()  # reused: setting one up per frame costs more than converting
        last_end: float | None = None
        try:
            for frame in frames:
                if index >= limit:
                    raise MediaError(
                        f"{path} has more than {limit:,} frames; trim the video or raise "
                        "ANIMATICA_MAX_VIDEO_FRAMES."
                    )
                if frame.time is not None:
                    shown_for = frame.duration * frame.time_base if frame.duration and frame.time_base else 0
                    last_end = frame.time + float(shown_for)
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


def _iter_folder(info: MediaInfo, start: int) -> Iterator[np.ndarray]:
    expected = (info.height, info.width)
    for file in frame_files(info.path)[start:]:
        frame = _load_still(file)
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
