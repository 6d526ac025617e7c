"""Writing animated frames as a browser-playable video or as a folder of lossless PNG frames.

Both writers are all-or-nothing: they write under a hidden temporary name next to the output
and rename it into place only when everything was written, so an interrupted or failed job
never leaves a partial file that looks like a result. Frames are encoded as they arrive; the
writers hold no list of frames, so memory does not grow with the video's length.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import av
import av.container
import av.video.stream
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from animatica.errors import MediaError
from animatica.media.audio import AudioCarrier

# Output suffix -> FFmpeg muxer. MP4 is the one browsers play; MOV and MKV are for editors.
VIDEO_SUFFIXES = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_FASTSTART_FORMATS = frozenset({"mp4", "mov"})
_FRAME_NAME = re.compile(r"^\d{5,}\.png$")
_AVCOL_BT709 = 1  # AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic value for BT.709
_AVCOL_RANGE_MPEG = 1

OutputKind = Literal["video", "frames"]


def output_kind(output: str | os.PathLike[str]) -> OutputKind:
    """Decide from the path alone whether ``output`` is a video file or a folder of PNG frames.

    A path ending in a separator, an existing folder, or a name without suffix is a frame
    folder; ``.mp4``/``.m4v``/``.mov``/``.mkv`` is a video. Pass the path as the user typed it
    (a string): ``Path`` drops a trailing slash.
    """
    text = os.fspath(output)
    if text.endswith(("/", os.sep)):
        return "frames"
    path = Path(text)
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if path.is_dir() or suffix == "":
        return "frames"
    raise MediaError(
        f"{text} has an unknown output type {suffix!r}; name a video .mp4 (or .mov/.mkv), "
        "or end the path with / for a folder of PNG frames."
    )


def check_writable(output: str | os.PathLike[str]) -> None:
    """Fail now, before any work, if ``output`` could not be written at the end.

    Missing parent folders are created (that is what a user naming ``results/run1.mp4`` wants).
    A video path that is an existing folder, a frame folder that is an existing file, and a
    frame folder that holds anything besides an earlier ``NNNNN.png`` series are refused.
    """
    kind = output_kind(output)
    path = Path(output)
    if kind == "video" and path.is_dir():
        raise MediaError(f"{path} is an existing folder; give a video file name such as {path / 'out.mp4'}.")
    if kind == "frames":
        if path.exists() and not path.is_dir():
            raise MediaError(f"{path} is an existing file; PNG frames need a folder, choose another name.")
        if path.is_dir():
            _check_replaceable(path)
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(
            f"cannot create the folder {parent} ({exc.strerror}); choose another output path."
        ) from exc
    try:
        handle, probe_name = tempfile.mkstemp(prefix=".animatica-write-check-", dir=parent)
    except OSError as exc:
        raise MediaError(f"cannot write to {parent} ({exc.strerror}); choose another output path.") from exc
    os.close(handle)
    os.unlink(probe_name)


def _check_replaceable(folder: Path) -> None:
    """Only an empty folder or one holding an earlier frame series may be replaced."""
    for entry in folder.iterdir():
        if not (_FRAME_NAME.match(entry.name) and entry.is_file()):
            raise MediaError(
                f"{folder} already holds other files (e.g. {entry.name}); choose a new or empty folder "
                "for the PNG frames."
            )


def _temporary_sibling(path: Path) -> Path:
    return path.parent / f".{path.name}.part-{secrets.token_hex(4)}"


def as_frame_rate(fps: float | Fraction) -> Fraction:
    """Turn a frame rate into the exact fraction the encoder needs.

    Floats are snapped to the simplest fraction with a denominator up to 1001, so
    ``29.97002997…`` becomes exactly 30000/1001 and ``25.0`` becomes 25; the error of any other
    float is below a microsecond per second, which keeps sound and picture in sync for hours.
    """
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    if rate.denominator > 1_000_000:
        rate = rate.limit_denominator(1_000_000)
    if not rate > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    return rate


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    return frame


class _AtomicWriter:
    """The shared life cycle: frames go to a temporary path that is renamed into place on success."""

    def __init__(self, output: str | os.PathLike[str]) -> None:
        check_writable(output)
        self.output = Path(output)
        self._temp = _temporary_sibling(self.output)
        self._size: tuple[int, int] | None = None  # (height, width) fixed by the first frame
        self.frames_written = 0
        self._done = False

    def write(self, frame: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame; the first frame fixes the size."""
        if self._done:
            raise RuntimeError(f"the writer for {self.output} is already closed")
        _check_frame(frame)
        if self._size is None:
            self._size = (frame.shape[0], frame.shape[1])
            self._start()
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame size {frame.shape[:2]} differs from the first frame's {self._size}")
        try:
            self._write(frame)
        except (OSError, av.FFmpegError) as exc:
            raise MediaError(f"writing {self.output} failed ({exc}); check the free disk space.") from exc
        self.frames_written += 1

    def write_chunk(self, frames: np.ndarray) -> None:
        """Append a ``(N, H, W, 3)`` chunk of frames."""
        if frames.ndim != 4:
            raise ValueError(f"expected an (N, H, W, 3) chunk, got shape {frames.shape}")
        for frame in frames:
            self.write(frame)

    def close(self) -> None:
        """Finish the output and move it into place; on any failure nothing is left behind."""
        if self._done:
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError(f"no frames were produced, so {self.output} was not written.")
        try:
            self._finish()
        except (OSError, av.FFmpegError) as exc:
            self.abort()
            raise MediaError(f"finishing {self.output} failed ({exc}); check the free disk space.") from exc
        except BaseException:
            self.abort()
            raise
        self._done = True

    def abort(self) -> None:
        """Drop everything written so far."""
        self._done = True
        self._discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _start(self) -> None:
        raise NotImplementedError

    def _write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _discard(self) -> None:
        raise NotImplementedError


class VideoWriter(_AtomicWriter):
    """H.264 in MP4 (or MOV/MKV): ``yuv420p``, BT.709, CRF 18, faststart, optional AAC sound.

    yuv420p stores colour at half resolution, so width and height must be even: an odd frame
    gets its last row/column repeated once (nothing is cut off; the extra pixel line is a copy
    of its neighbour). Frames are tagged BT.709 limited range, which browsers honour.
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        fps: float | Fraction,
        audio_from: Path | None = None,
        *,
        crf: int = 18,
        preset: str = "medium",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(output)
        suffix = self.output.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise MediaError(f"{self.output} is not a video file name; use .mp4, .mov or .mkv.")
        self._format = VIDEO_SUFFIXES[suffix]
        self.rate = as_frame_rate(fps)
        self._audio_from = Path(audio_from) if audio_from is not None else None
        self._crf = crf
        self._preset = preset
        self._metadata = dict(metadata or {})  # container tags, e.g. a mark that the video is synthetic
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: AudioCarrier | None = None
        # One converter for the whole video: a fresh one per frame re-initialises swscale (~2 ms).
        self._reformatter = VideoReformatter()

    def _start(self) -> None:
        assert self._size is not None
        height, width = self._size
        options = {"movflags": "+faststart"} if self._format in _FASTSTART_FORMATS else {}
        try:
            self._container = av.open(str(self._temp), mode="w", format=self._format, options=options)
        except (OSError, av.FFmpegError) as exc:
            raise MediaError(f"cannot create {self.output} ({exc}); choose another output path.") from exc
        self._container.metadata.update(self._metadata)
        stream = self._container.add_stream(
            "libx264", rate=self.rate, options={"crf": str(self._crf), "preset": self._preset}
        )
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / self.rate
        stream.codec_context.colorspace = _AVCOL_BT709
        stream.codec_context.color_primaries = _AVCOL_BT709
        stream.codec_context.color_trc = _AVCOL_BT709
        stream.codec_context.color_range = _AVCOL_RANGE_MPEG
        self._stream = stream
        if self._audio_from is not None:
            self._audio = AudioCarrier.attach(self._audio_from, self._container)

    def _write(self, frame: np.ndarray) -> None:
        assert self._container is not None and self._stream is not None
        height, width = frame.shape[:2]
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        rgb = av.VideoFrame.from_ndarray(frame, format="rgb24")
        yuv = self._reformatter.reformat(
            rgb,
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
        )
        yuv.pts = self.frames_written
        yuv.time_base = 1 / self.rate
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.advance(float((self.frames_written + 1) / self.rate))

    def _finish(self) -> None:
        assert self._container is not None and self._stream is not None
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            audio, self._audio = self._audio, None
            audio.finish(float(self.frames_written / self.rate))
        container, self._container = self._container, None
        container.close()  # writes the index, then moves it to the front (faststart)
        os.replace(self._temp, self.output)

    def _discard(self) -> None:
        if self._audio is not None:
            audio, self._audio = self._audio, None
            audio.close()
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(OSError, av.FFmpegError):
                container.close()  # a failure here does not matter: the file is deleted below
        self._temp.unlink(missing_ok=True)


class FrameFolderWriter(_AtomicWriter):
    """Lossless PNG frames ``00000.png``, ``00001.png``… in a folder, for editing pipelines.

    Frames carry no timing or sound, so ``fps`` and ``audio_from`` do not apply. The frames are
    written into a hidden sibling folder that replaces the target at the end. An existing target
    is replaced only if it is empty or holds nothing but an earlier ``NNNNN.png`` series (so a
    re-run overwrites its own result but never a folder of someone's other files).
    """

    def __init__(
        self,
        output: str | os.PathLike[str],
        *,
        compress_level: int = 3,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(output)
        self._compress_level = compress_level
        # Tags go into every frame as PNG text chunks ("comment" -> "Comment"), the frames' only metadata.
        self._text: PngInfo | None = None
        if metadata:
            self._text = PngInfo()
            for key, value in metadata.items():
                self._text.add_itxt(key[:1].upper() + key[1:], value)

    def _start(self) -> None:
        try:
            self._temp.mkdir()
        except OSError as exc:
            raise MediaError(
                f"cannot create {self._temp} ({exc.strerror}); choose another output path."
            ) from exc

    def _write(self, frame: np.ndarray) -> None:
        name = self._temp / f"{self.frames_written:05d}.png"
        Image.fromarray(frame).save(
            name, format="PNG", compress_level=self._compress_level, pnginfo=self._text
        )

    def _finish(self) -> None:
        if self.output.is_dir():
            _check_replaceable(self.output)  # it may have changed since the writer was opened
            old = _temporary_sibling(self.output)
            os.replace(self.output, old)
            os.replace(self._temp, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self._temp, self.output)

    def _discard(self) -> None:
        shutil.rmtree(self._temp, ignore_errors=True)


FrameWriter = VideoWriter | FrameFolderWriter


def open_writer(
    output: str | os.PathLike[str],
    fps: float | Fraction,
    audio_from: Path | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
) -> FrameWriter:
    """The writer for ``output``: a video for a video suffix, else a PNG-frame folder.

    ``metadata`` becomes the video's container tags (``comment``, ``description``, ...) or each
    PNG frame's text chunks.

    Use it as a context manager: a normal exit finishes and renames the output into place; an
    exception leaves nothing behind. See ``output_kind`` for how the path decides.
    """
    if output_kind(output) == "video":
        return VideoWriter(output, fps, audio_from, metadata=metadata)
    return FrameFolderWriter(output, metadata=metadata)
