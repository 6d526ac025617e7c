"""Where the command line's live frames come from: a video file played in real time, or a camera.

A file stands in for a camera by being paced: frame ``i`` is due ``i / fps`` seconds after the
start and is not offered before then. Its delay is measured from that due time, so a file
gives the same figures a camera running at the file's rate would. When the reader falls behind
(the machine is busy), a frame whose successor is already due is skipped and counted, and the
newest due frame is offered instead: like a camera, a file never builds up a backlog.

A camera frame's capture time is the moment it reaches this process. Whatever the camera and
its driver spent before that (exposure, USB transfer) is not counted: there is no portable way
to read it, and the same holds for a browser's camera.

`run_local` is the command line's whole session: a source fed through the same `LiveLoop` the
service runs, its figures, and the optional recording.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from animatica.engines.base import Engine
from animatica.errors import AnimaticaError
from animatica.live.session import AnimatedFrame, LiveAnimator, LiveLoop, now_ms
from animatica.live.stats import LiveStats, cpu_summary
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits
from animatica.media.probe import probe, require_video
from animatica.media.reader import iter_frames


@dataclass(frozen=True)
class SourceFrame:
    image: np.ndarray  # (H, W, 3) uint8
    seq: int  # the frame's index in the file or the camera's stream
    captured_ms: float  # capture (camera) or due (file) time, on `session.now_ms`'s clock


class FrameSource(Protocol):
    fps: float  # the rate frames come at (nominal for a camera)
    dropped: int  # frames the source itself skipped because a newer one was due

    def __iter__(self) -> Iterator[SourceFrame]: ...

    def close(self) -> None: ...


def paced(
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    clock: Callable[[], float] = now_ms,
    sleep: Callable[[float], None] = time.sleep,
    on_skip: Callable[[], None] = lambda: None,
) -> Iterator[SourceFrame]:
    """``frames`` offered at ``fps`` from the first ``next`` on: each waits for its due time and
    carries it as its capture time; a frame whose successor is already due is skipped (``on_skip``).

    ``clock`` is in milliseconds; ``sleep`` in seconds (both replaceable, to test without waiting).
    """
    if not fps > 0:
        raise AnimaticaError(f"a paced source needs a positive frame rate, got {fps}")
    step = 1000.0 / fps
    it = iter(frames)
    frame = next(it, None)
    start = clock()
    index = 0
    while frame is not None:
        due = start + index * step
        now = clock()
        if now < due:
            sleep((due - now) / 1000.0)
        elif now >= due + step:  # the next frame is due already: this one is stale
            following = next(it, None)
            if following is not None:
                on_skip()
                frame, index = following, index + 1
                continue
        yield SourceFrame(frame, index, due)
        frame, index = next(it, None), index + 1


class PacedFile:
    """A video file (or folder of frames) played at its own frame rate (25 fps when it has none)."""

    def __init__(
        self,
        path: Path,
        *,
        limits: MediaLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = now_ms,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        info = require_video(probe(Path(path), limits))
        self.path = info.path
        self.fps = float(info.fps) if info.fps else 25.0
        self.dropped = 0
        self._frames = iter_frames(self.path, limits=limits)
        self._clock, self._sleep = clock, sleep

    def __iter__(self) -> Iterator[SourceFrame]:
        return paced(self._frames, self.fps, clock=self._clock, sleep=self._sleep, on_skip=self._skipped)

    def _skipped(self) -> None:
        self.dropped += 1

    def close(self) -> None:
        self._frames.close()  # type: ignore[attr-defined]  # a generator: closes the decoder


def camera_device(index: int, devices: Path = Path("/dev")) -> Path:
    """The device file of camera ``index``; a clear error naming the cameras there are when it is absent."""
    if index < 0:
        raise AnimaticaError(f"--camera takes a camera number (0 for /dev/video0), got {index}")
    device = devices / f"video{index}"
    if not device.exists():
        found = sorted(p.name for p in devices.glob("video*"))
        listed = (
            f"cameras here: {', '.join('/dev/' + n for n in found)}" if found else "no camera is connected"
        )
        raise AnimaticaError(f"there is no camera /dev/video{index}; {listed}")
    return device


class Camera:
    """A local camera (``/dev/videoN``) through FFmpeg's video4linux2 input."""

    def __init__(
        self,
        index: int,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        clock: Callable[[], float] = now_ms,
        devices: Path = Path("/dev"),
    ) -> None:
        import av

        device = camera_device(index, devices)
        options: dict[str, str] = {}
        if size is not None:
            options["video_size"] = f"{size[1]}x{size[0]}"
        if fps is not None:
            options["framerate"] = f"{fps:g}"
        try:
            self._container = av.open(str(device), format="v4l2", options=options)
        except (av.FFmpegError, OSError) as exc:
            raise AnimaticaError(
                f"the camera /dev/video{index} could not be opened ({exc}); is another program using it, "
                "and may this user read it (group 'video')?"
            ) from exc
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or stream.base_rate or fps or 30)
        self.dropped = 0
        self._clock = clock
        self._name = f"/dev/video{index}"

    def __iter__(self) -> Iterator[SourceFrame]:
        import av

        try:
            for seq, frame in enumerate(self._container.decode(video=0)):
                captured = self._clock()
                yield SourceFrame(frame.to_ndarray(format="rgb24"), seq, captured)
        except av.FFmpegError as exc:
            raise AnimaticaError(f"the camera {self._name} stopped delivering frames ({exc})") from exc

    def close(self) -> None:
        self._container.close()


def play(
    source: FrameSource,
    animator: LiveAnimator,
    stats: LiveStats,
    *,
    seconds: float | None = None,
    on_frame: Callable[[AnimatedFrame], None] | None = None,
    clock: Callable[[], float] = now_ms,
) -> None:
    """Feed ``source`` through a `LiveLoop` around ``animator`` until it ends, ``seconds`` pass or
    Ctrl+C, recording every animated frame in ``stats``; the last frame offered is animated
    before returning. Raises the engine's error, if it stopped on one.

    Ctrl+C is how a camera session is ended, so it ends the session normally here.
    """

    def shown(frame: AnimatedFrame) -> None:
        stats.record(frame.ready_ms - frame.captured_ms, frame.engine_ms, shown_s=frame.ready_ms / 1000.0)
        if on_frame is not None:
            on_frame(frame)

    loop = LiveLoop(animator, shown, clock=clock)
    stats.start()
    try:
        with loop:
            started = clock()
            try:
                for frame in source:
                    loop.submit(frame.image, frame.seq, frame.captured_ms)
                    if not loop.running or (seconds is not None and clock() - started >= seconds * 1000.0):
                        break
                loop.wait_idle()
            except KeyboardInterrupt:
                pass
    finally:
        source.close()
        stats.set_dropped(loop.dropped + source.dropped)
        stats.finish()


def run_local(
    engine: Engine,
    picture: np.ndarray,
    source: FrameSource,
    *,
    size: int = 256,
    seconds: float | None = None,
    output: Path | None = None,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """One live session on this machine: ``picture`` animated by ``source``'s frames, as they come.

    Returns the session's figures (`LiveStats.summary` plus ``size`` and ``cpu``). With
    ``output`` (an ``.mp4``), the animated frames are kept as JPEGs at their capture times while
    the session runs (a fraction of a millisecond each, so the recording barely slows the loop)
    and written as an H.264 MP4 at the rate reached once it is over.
    """
    from animatica.live.codec import encode_frame

    recorder = None
    if output is not None:
        from animatica.live.recording import Recorder
        from animatica.media.writer import check_writable

        if Path(output).suffix.lower() not in (".mp4", ".m4v", ".mov", ".mkv"):
            raise AnimaticaError(f"--output must be a video file (.mp4), not {Path(output).name!r}")
        check_writable(output)
        recorder = Recorder(Path(output).with_name(f".{Path(output).name}.live.mkv"), size)

    def keep(frame: AnimatedFrame) -> None:
        if recorder is not None:
            recorder.add_frame(encode_frame(frame.image, "jpeg", 90), frame.captured_ms)

    stats = LiveStats(engine.name, clock=lambda: now_ms() / 1000.0)
    animator = LiveAnimator(engine, picture, size)
    animator.warm_up()
    try:
        play(source, animator, stats, seconds=seconds, on_frame=keep)
        if recorder is not None:
            recording = recorder.finish()
            if recording is not None:
                try:
                    _convert(recording, Path(output), limits)  # type: ignore[arg-type]
                finally:
                    recording.unlink(missing_ok=True)
    finally:
        if recorder is not None:
            recorder.abort()
    return {**stats.summary(), "size": size, "cpu": cpu_summary()}


def _convert(recording: Path, output: Path, limits: MediaLimits) -> None:
    from animatica.jobs.live_recording import convert

    convert(recording, output, lambda step: None, lambda: False, limits)
