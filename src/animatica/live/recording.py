"""Recording a live session as it runs: the animated JPEGs kept as they are, in a Matroska file.

The live loop already encodes every animated frame as a JPEG to send it to the viewer, so the
recording muxes those same bytes as MJPEG packets with their time in milliseconds: no second
encode competes with the engine for the CPU, and the frames keep their real (variable) timing.
Each packet goes to disk as it arrives, so a ten-minute session holds no more memory than a
ten-second one. Turning the file into an H.264/AAC MP4 is a job (`animatica.jobs.live_recording`),
run after the session, where its cost does not add to the viewer's delay.

The microphone's sound arrives as MediaRecorder chunks (WebM/Opus); they only make sense in
order and together, so they are appended to a side file. At the end its Opus packets are copied
(not re-encoded) into the same Matroska file, placed at the moment the microphone started
relative to the first frame, so one file carries the whole session. Both times must come from
one clock (the viewer's, which stamps the camera frames and the microphone's start alike).

Until `Recorder.finish` everything is written under hidden temporary names next to the target,
which is created only by the final rename: a crash or a stopped server leaves ``.name.part-…``
files, never a file under the real name that could be taken for a whole recording.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

import av
import av.container
import av.stream

from animatica.errors import AnimaticaError

log = logging.getLogger("animatica.live")
MS = Fraction(1, 1000)
JPEG_MAGIC = b"\xff\xd8"


class RecordingError(AnimaticaError):
    """The recording cannot go on (not a JPEG frame, disk full); the live session itself can."""


def _hidden(path: Path, tag: str) -> Path:
    return path.parent / f".{path.name}.{tag}-{secrets.token_hex(4)}"


class Recorder:
    """One session's recording into ``path`` (a ``.mkv``) of ``size``×``size`` JPEG frames."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = Path(path)
        self.size = int(size)
        self.frames = 0
        self._lock = threading.Lock()
        self._video_temp = _hidden(self.path, "part")
        self._audio_temp = _hidden(self.path, "audio")
        self._container: av.container.OutputContainer | None = None
        self._stream: av.stream.Stream | None = None
        self._audio: BinaryIO | None = None
        self._audio_started_ms: float | None = None
        self._first_ms: float | None = None
        self._last_pts = -1
        self._closed = False

    # --- while the session runs -----------------------------------------------------------------

    def add_frame(self, jpeg: bytes, time_ms: float) -> bool:
        """Append one animated frame shown at ``time_ms``; False once the recording has ended."""
        if not jpeg.startswith(JPEG_MAGIC):
            raise RecordingError("a recorded frame must be a JPEG picture")
        if not math.isfinite(time_ms):
            raise RecordingError("a recorded frame needs a finite time")
        with self._lock:
            if self._closed:
                return False
            try:
                if self._container is None:
                    self._open_video()
                    self._first_ms = time_ms
                assert self._first_ms is not None and self._stream is not None
                # Matroska wants rising times; two frames in the same millisecond are 1 ms apart.
                pts = max(round(time_ms - self._first_ms), self._last_pts + 1)
                packet = av.Packet(jpeg)
                packet.stream = self._stream
                packet.pts = packet.dts = pts
                packet.time_base = MS
                packet.is_keyframe = True
                assert self._container is not None
                self._container.mux(packet)
            except (OSError, av.FFmpegError) as error:
                reason = getattr(error, "strerror", None) or "write error"
                raise RecordingError(
                    f"the recording could not be written ({reason}); it was stopped"
                ) from error
            self._last_pts = pts
            self.frames += 1
            return True

    def add_audio(self, started_ms: float, chunk: bytes) -> bool:
        """Append the microphone's next MediaRecorder chunk; ``started_ms`` is when it started."""
        if not math.isfinite(started_ms):
            raise RecordingError("the microphone's start time must be finite")
        with self._lock:
            if self._closed:
                return False
            try:
                if self._audio is None:
                    self._audio = open(self._audio_temp, "wb")  # noqa: SIM115 (kept open for the session)
                    self._audio_started_ms = started_ms
                self._audio.write(chunk)
            except OSError as error:
                raise RecordingError(f"the sound could not be recorded ({error.strerror})") from error
            return True

    # --- at the end -------------------------------------------------------------------------------

    def finish(self) -> Path | None:
        """Close the recording and move it to ``path``; None (nothing left behind) without frames."""
        with self._lock:
            if self._closed:
                return self.path if self.path.exists() and self.frames else None
            self._closed = True
            try:
                if self._container is None:
                    return None
                container, self._container = self._container, None
                container.close()
                if self._audio is not None:
                    self._audio.close()
                    self._audio = None
                    self._add_sound()
                os.replace(self._video_temp, self.path)
                return self.path
            except (OSError, av.FFmpegError) as error:
                reason = getattr(error, "strerror", None) or "write error"
                raise RecordingError(f"the recording could not be finished ({reason})") from error
            finally:
                self._discard()

    def abort(self) -> None:
        """Drop the recording and every temporary file."""
        with self._lock:
            self._closed = True
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
            self.finish()
        else:
            self.abort()

    # --- inside -------------------------------------------------------------------------------------

    def _open_video(self) -> None:
        self._container = av.open(str(self._video_temp), mode="w", format="matroska")
        stream = self._container.add_stream("mjpeg")
        stream.width = self.size
        stream.height = self.size
        stream.pix_fmt = "yuvj420p"
        stream.time_base = MS
        self._stream = stream

    def _discard(self) -> None:
        if self._audio is not None:
            with contextlib.suppress(OSError):
                self._audio.close()
            self._audio = None
        if self._container is not None:
            with contextlib.suppress(OSError, av.FFmpegError):
                self._container.close()
            self._container = None
        self._video_temp.unlink(missing_ok=True)
        self._audio_temp.unlink(missing_ok=True)

    def _add_sound(self) -> None:
        """Copy the Opus packets into the video's file (replacing its temporary file); a sound file
        that cannot be read leaves the recording silent rather than lost."""
        assert self._first_ms is not None and self._audio_started_ms is not None
        merged = _hidden(self.path, "mux")
        try:
            _mux_sound(self._video_temp, self._audio_temp, merged, self._audio_started_ms - self._first_ms)
        except (OSError, av.FFmpegError, ValueError) as error:
            merged.unlink(missing_ok=True)
            log.warning("the session's sound could not be read; the recording is kept without it: %s", error)
            return
        os.replace(merged, self._video_temp)


def _packets(container: av.container.InputContainer, stream: av.stream.Stream) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.pts is not None and packet.size:  # the demuxer's final empty packet is no data
            yield packet


def _ms(packet: av.Packet) -> float:
    assert packet.pts is not None and packet.time_base is not None
    return float(packet.pts * packet.time_base * 1000)


def _mux_sound(video: Path, sound: Path, output: Path, offset_ms: float) -> None:
    """Write ``video``'s frames and ``sound``'s first audio stream into ``output``, packets copied;
    the sound's time 0 lands ``offset_ms`` after the first frame (before it when negative).

    Both inputs are read packet by packet in time order, so memory stays flat whatever the length.
    Times are shifted together so that none is negative; players and the conversion job take the
    first frame's time as the start, so a sound that began before the camera is cut to it there.
    """
    with av.open(str(video)) as video_in, av.open(str(sound)) as sound_in:
        if not sound_in.streams.audio:
            raise ValueError("the microphone's file holds no sound")
        video_stream = video_in.streams.video[0]
        sound_stream = sound_in.streams.audio[0]
        sound_packets = _packets(sound_in, sound_stream)
        first_sound = next(sound_packets, None)
        if first_sound is None:
            raise ValueError("the microphone's file holds no sound packets")
        sound_shift = offset_ms
        video_shift = 0.0
        lowest = _ms(first_sound) + sound_shift
        if lowest < 0:
            video_shift, sound_shift = -lowest, sound_shift - lowest
        with av.open(str(output), mode="w", format="matroska") as out:
            video_out = out.add_stream_from_template(video_stream)
            sound_out = out.add_stream_from_template(sound_stream)
            video_out.time_base = sound_out.time_base = MS
            sources = [
                (_packets(video_in, video_stream), video_out, video_shift),
                (sound_packets, sound_out, sound_shift),
            ]
            heads = [next(sources[0][0], None), first_sound]
            last = [-1, -1]
            while any(head is not None for head in heads):
                index = min(
                    (i for i, head in enumerate(heads) if head is not None),
                    key=lambda i: _ms(heads[i]) + sources[i][2],  # type: ignore[arg-type]
                )
                packet = heads[index]
                assert packet is not None
                packets, stream, shift = sources[index]
                heads[index] = next(packets, None)
                pts = round(_ms(packet) + shift)
                if pts <= last[index]:
                    continue  # a repeated time would stop the muxer; one packet less is inaudible
                last[index] = pts
                packet.stream = stream
                packet.pts = packet.dts = pts
                packet.time_base = MS
                out.mux(packet)
