"""The live-recording job kind: a live session's raw recording in, a browser-playable MP4 out.

During the session the recorder keeps the animated JPEGs as they were sent, at the times they
were captured (`animatica.live.recording`), plus the microphone's Opus sound. This job turns that
into the same kind of file as an animation (`media.writer.VideoWriter`: H.264, AAC, faststart),
so it plays in the History like any other result.

A live session's frames come at an uneven rate: the engine drops camera frames when it falls
behind, and a network stall leaves a gap. The MP4 is written at a constant rate, the one the
session actually reached (its frames over its duration), and each recorded frame goes to the
output slot nearest its time: a gap holds the last picture, a burst keeps the later frame. A variable-rate
MP4 would keep every recorded time exactly, but browsers, editors and the writer's sound carrier
all count time in frames, and a constant rate keeps the sound in step to within half a frame
without any of them having to honour irregular timestamps.

The job costs no credit (the session's minutes were metered while it ran). It reads the source
portrait only so that the History shows whose face it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from animatica.errors import AnimaticaError, MediaError
from animatica.jobs.kinds import Execution, JobKind, OnProgress, Result, ShouldCancel, register
from animatica.jobs.messages import CANCELED
from animatica.media.limits import DEFAULT_LIMITS, MediaLimits
from animatica.settings import Settings

NAME = "live_recording"
MIN_RATE, MAX_RATE = Fraction(1), Fraction(60)
DAMAGED = "the live recording is damaged"


@dataclass(frozen=True)
class Step:
    """A progress report (the attributes the job core reads)."""

    stage: str
    done: int = 0
    total: int | None = None
    eta_seconds: float | None = None


@dataclass(frozen=True)
class Timeline:
    """What one pass over the recording's packets (no decoding) tells about it."""

    frames: int
    first_ms: float
    last_ms: float
    width: int
    height: int
    has_audio: bool

    @property
    def rate(self) -> Fraction:
        """The rate the session reached, to 1/100 frame per second, within 1..60."""
        span = self.last_ms - self.first_ms
        if self.frames < 2 or span <= 0:
            return Fraction(25)
        measured = Fraction(round((self.frames - 1) * 100_000 / span), 100)
        return min(MAX_RATE, max(MIN_RATE, measured))

    @property
    def output_frames(self) -> int:
        """Frames of the MP4: one per 1/rate from the first recorded frame to the last."""
        return round((self.last_ms - self.first_ms) / 1000 * self.rate) + 1


def _open(path: Path) -> Any:
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as error:
        raise MediaError(f"{DAMAGED} and cannot be opened; the session's video was lost.") from error
    if not container.streams.video or container.streams.video[0].codec_context.name != "mjpeg":
        container.close()
        raise MediaError(f"{DAMAGED}: it holds no recorded frames.")
    return container


def _ms(packet: av.Packet) -> float:
    assert packet.pts is not None and packet.time_base is not None
    return float(packet.pts * packet.time_base * 1000)


def _video_packets(container: Any) -> Iterator[av.Packet]:
    stream = container.streams.video[0]
    try:
        for packet in container.demux(stream):
            if packet.size and packet.pts is not None:
                yield packet
    except av.FFmpegError as error:
        raise MediaError(f"{DAMAGED} ({error.strerror or error}); the session's video was lost.") from error


def scan(path: Path, limits: MediaLimits = DEFAULT_LIMITS) -> Timeline:
    """Check the recording from its packets alone: frames in rising time order, within ``limits``,
    and as long as its header says (a file cut short is refused, not converted in part)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_image_pixels:
            raise MediaError(f"{DAMAGED}: its frames are {width}x{height}, larger than allowed here.")
        frames, first, last = 0, 0.0, -math.inf
        for packet in _video_packets(container):
            time = _ms(packet)
            if time <= last:
                raise MediaError(f"{DAMAGED}: its frame times go backwards.")
            if frames == 0:
                first = time
            last = time
            frames += 1
            if frames > limits.max_video_frames:
                raise MediaError(f"{DAMAGED}: it has more than {limits.max_video_frames:,} frames.")
        if frames == 0:
            raise MediaError(f"{DAMAGED}: it holds no recorded frames.")
        timeline = Timeline(frames, first, last, width, height, bool(container.streams.audio))
        declared = _declared_end_ms(container, stream)
        if declared is not None and last < declared - max(250.0, 3000 / float(timeline.rate)):
            raise MediaError(
                f"{DAMAGED}: its frames stop at {last / 1000:.1f} s of {declared / 1000:.1f} s "
                "(it was cut short)."
            )
        return timeline


def _declared_end_ms(container: Any, stream: Any) -> float | None:
    from animatica.media.container import declared_end

    end, own = declared_end(container, stream)
    if end is None:
        return None
    if not own:  # the whole file's end may be the sound's; the video may stop a little before it
        return None
    return end * 1000


def _picture(packet: av.Packet, codec: Any, size: tuple[int, int], index: int) -> np.ndarray:
    try:
        frames = codec.decode(packet)
    except av.FFmpegError as error:
        raise MediaError(f"{DAMAGED}: frame {index} cannot be decoded.") from error
    if not frames:
        raise MediaError(f"{DAMAGED}: frame {index} cannot be decoded.")
    picture = frames[-1].to_ndarray(format="rgb24")
    if picture.shape[:2] != size:
        raise MediaError(f"{DAMAGED}: frame {index} has another size than the first.")
    return picture


def convert(
    recording: Path,
    output: Path,
    on_progress: OnProgress,
    should_cancel: ShouldCancel,
    limits: MediaLimits = DEFAULT_LIMITS,
) -> Result:
    """Write ``recording`` as an H.264 MP4 at its measured rate, with its sound as AAC if it has any.

    Only the recorded frames an output frame shows are decoded. Nothing is left at ``output``
    unless the whole video was written.
    """
    from animatica.media.writer import VideoWriter

    timeline = scan(recording, limits)
    rate = timeline.rate
    total = timeline.output_frames
    step_ms = 1000 / rate
    on_progress(Step("encode", 0, total))
    size = (timeline.height, timeline.width)
    with (
        _open(recording) as container,
        VideoWriter(output, rate, recording if timeline.has_audio else None) as writer,
    ):
        codec = container.streams.video[0].codec_context
        packets = _video_packets(container)
        current = next(packets)
        upcoming = next(packets, None)
        index, picture = 0, None
        for done in range(total):
            if should_cancel():
                raise AnimaticaError(CANCELED)
            # The last recorded frame whose nearest slot is this one or an earlier one.
            due = timeline.first_ms + float(done * step_ms + step_ms / 2)
            while upcoming is not None and _ms(upcoming) <= due:
                current, upcoming = upcoming, next(packets, None)
                index, picture = index + 1, None
            if picture is None:
                picture = _picture(current, codec, size, index)
            writer.write(picture)
            on_progress(Step("encode", done + 1, total))
    return Result(frames=total, fps=float(rate))


def request(settings: Settings, execution: Execution) -> dict[str, Any]:
    return {
        "recording": str(execution.inputs["driving"]),
        "output": str(execution.output),
        "limits": MediaLimits.from_settings(settings),
    }


def run(fields: dict[str, Any], on_progress: OnProgress, should_cancel: ShouldCancel) -> Result:
    return convert(
        Path(fields["recording"]), Path(fields["output"]), on_progress, should_cancel, fields["limits"]
    )


def size(options: Mapping[str, Any]) -> int | None:
    """The recorded frames when the submitter counted them; else the first progress report says."""
    frames = options.get("frames")
    return int(frames) if frames else None


LIVE_RECORDING = register(
    JobKind(
        name=NAME,
        inputs=("source", "driving"),
        result="result.mp4",
        run=run,
        request=request,
        size=size,
        cost=0,
    )
)
