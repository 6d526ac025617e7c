"""Joining H.264 videos end to end by copying their packets, with the sound of another file.

The parts are encoded apart (on different workers), each from a keyframe and with the same encoder
settings, so their compressed frames can follow one another in one MP4 unchanged: joining costs
reading the files, never decoding or encoding a frame, and so it stays a small serial step after
parallel work. Only the timing is rewritten. Each part counts its frames from 0; in the result,
part k's frames are shifted by the frames of the parts before it. Decoding times are not taken from
the files (Matroska stores presentation times only): with B-frames, the n-th packet of a part is
decoded ``delay`` frame times before the n-th frame is shown, so one ``delay`` (the largest of the
parts') gives decoding times that keep increasing across every seam.

Sound comes from another file (the driving video), timed from that file's first video frame, as
`audio.AudioCarrier` times it. AAC is copied packet by packet: re-encoding a minute of it costs
seconds, more than the whole video join, and copying keeps the original's quality. The copy starts
with the packet that primes the decoder for time 0 and ends with the packet that holds the last
video frame's sound, so the track may run up to one AAC packet (1024 samples, about 21 ms at
48 kHz) past the picture. Any other codec is encoded to AAC once, cut to the sample.

Every part is checked before anything is written (`inspect_part`): a missing, cut-short or damaged
part, or one encoded differently, is a `MediaError` naming the part, and the output is written
under a temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import av.container
import av.packet
import av.stream

from animatica.errors import MediaError
from animatica.media.audio import AudioCarrier
from animatica.media.container import declared_end
from animatica.media.writer import VIDEO_SUFFIXES, as_frame_rate, check_writable

_FASTSTART_FORMATS = frozenset({"mp4", "mov"})
_COPIED_AUDIO = frozenset({"aac"})


@dataclass(frozen=True)
class VideoPart:
    """One H.264 part as `inspect_part` found it: what joining it needs and what must match."""

    path: Path
    frames: int
    delay: int  # frame times by which its first packet is decoded before its first frame is shown
    width: int
    height: int
    extradata: bytes  # the encoder's parameter sets (SPS/PPS): equal for parts that can follow one another


def _damaged(path: Path, why: str) -> MediaError:
    return MediaError(f"{path.name} is damaged ({why})")


def inspect_part(path: Path, fps: Fraction) -> VideoPart:
    """Read the packets of ``path`` (nothing is decoded) and check that it can be joined.

    It must hold one H.264 stream whose first packet is a keyframe, frames ``0 .. n-1`` at
    ``fps`` each exactly once, and as many frames as the duration written at its end declares
    (a file cut short keeps its header, so this is what tells).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path.name} is missing")
    rate = as_frame_rate(fps)
    order: list[int] = []  # the frame index of each packet, in decoding order
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise _damaged(path, "no video stream")
            stream = container.streams.video[0]
            codec = stream.codec_context
            if codec.name != "h264":
                raise _damaged(path, f"{codec.name} instead of H.264")
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if packet.pts is None or packet.time_base is None:
                    raise _damaged(path, f"packet {len(order)} has no time")
                if not order and not packet.is_keyframe:
                    raise _damaged(path, "it does not start with a keyframe")
                order.append(round(packet.pts * packet.time_base * rate))
            end, _per_stream = declared_end(container, stream)
            size, extradata = (codec.width, codec.height), bytes(codec.extradata or b"")
    except av.FFmpegError as exc:
        raise _damaged(path, exc.strerror or str(exc)) from exc
    if not order:
        raise _damaged(path, "no frames")
    if sorted(order) != list(range(len(order))):
        raise _damaged(path, f"its {len(order)} frames are not numbered 0 to {len(order) - 1} once each")
    if end is not None and round(Fraction(end) * rate) != len(order):
        raise _damaged(path, f"it declares {round(Fraction(end) * rate)} frames but holds {len(order)}")
    delay = max(index - frame for index, frame in enumerate(order))
    return VideoPart(path, len(order), delay, *size, extradata)


class _CopiedAudio:
    """The AAC packets of ``source``'s first audio stream, copied into ``output`` as the video advances.

    Same interface as `AudioCarrier`. Output time 0 is the source's first video frame; a packet that
    ends at or before it is kept only as the one just before the first sounding packet, since the
    decoder needs it to rebuild that packet's first samples (the encoder's priming packet is one).
    """

    def __init__(self, source: av.container.InputContainer, output: av.container.OutputContainer) -> None:
        self._input = source
        in_stream = source.streams.audio[0]
        self._stream = output.add_stream_from_template(in_stream)
        self._output = output
        self._time_base = Fraction(1, in_stream.rate)  # `_copyable`: the stream counts samples
        self._stream.time_base = self._time_base
        videos = source.streams.video
        origin = Fraction(0)
        if videos and videos[0].start_time is not None and videos[0].time_base is not None:
            origin = videos[0].start_time * videos[0].time_base
        self._shift = round(origin / self._time_base)  # source ticks at output time 0
        self._packets: Iterator[av.packet.Packet] = source.demux(in_stream)
        self._waiting: av.packet.Packet | None = None  # read, not yet due
        self._preroll: av.packet.Packet | None = None  # the last packet that ends before time 0
        self._done = False

    def advance(self, until: float) -> None:
        """Copy every packet that starts before ``until`` seconds of output time."""
        while (packet := self._next()) is not None:
            start = packet.pts - self._shift
            if start * self._time_base >= until:
                self._waiting = packet
                return
            if start + (packet.duration or 0) <= 0:
                self._preroll = packet
                continue
            if self._preroll is not None:
                preroll, self._preroll = self._preroll, None
                self._mux(preroll)
            self._mux(packet)

    def finish(self, end: float) -> None:
        try:
            self.advance(end)
        finally:
            self.close()

    def close(self) -> None:
        self._input.close()

    def _next(self) -> av.packet.Packet | None:
        if self._waiting is not None:
            packet, self._waiting = self._waiting, None
            return packet
        if self._done:
            return None
        try:
            for packet in self._packets:
                if packet.size and packet.pts is not None:
                    return packet
        except av.FFmpegError as exc:
            raise MediaError(
                f"the sound could not be read ({exc}); the file is damaged, export it again."
            ) from exc
        self._done = True
        return None

    def _mux(self, packet: av.packet.Packet) -> None:
        assert packet.pts is not None
        packet.pts -= self._shift
        if packet.dts is not None:
            packet.dts -= self._shift
        packet.stream = self._stream
        self._output.mux(packet)


def _copyable(stream: av.audio.stream.AudioStream) -> bool:
    """AAC whose timestamps count samples (MP4, MOV) goes into MP4 as it is. ADTS AAC (MPEG-TS)
    lacks the decoder configuration MP4 stores, and Matroska's millisecond times would give the
    copied packets uneven durations, so those are encoded instead."""
    codec = stream.codec_context
    return (
        codec.name in _COPIED_AUDIO
        and bool(codec.extradata)
        and stream.rate > 0
        and stream.time_base == Fraction(1, stream.rate)
    )


def _attach_audio(source: Path, output: av.container.OutputContainer) -> _CopiedAudio | AudioCarrier | None:
    """Copy ``source``'s sound when MP4 carries it as it is, else encode it; None when it has none."""
    try:
        container = av.open(str(source))
    except av.FFmpegError as exc:
        raise MediaError(f"{source} could not be opened to copy its sound ({exc}).") from exc
    try:
        streams = container.streams.audio
        if streams and _copyable(streams[0]):
            return _CopiedAudio(container, output)
    except BaseException:
        container.close()
        raise
    container.close()
    return AudioCarrier.attach(source, output)


def concat_parts(
    parts: Sequence[VideoPart],
    output: Path,
    fps: Fraction,
    audio_from: Path | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Write ``parts`` one after another into ``output`` with the sound of ``audio_from``.

    Returns the number of frames. The parts must come from `inspect_part` with the same ``fps``.
    ``metadata`` becomes the output's container tags, as the writer of a whole video sets them.
    """
    if not parts:
        raise MediaError("there are no video parts to join")
    first = parts[0]
    for part in parts[1:]:
        if (part.width, part.height, part.extradata) != (first.width, first.height, first.extradata):
            raise MediaError(
                f"{part.path.name} was encoded differently from {first.path.name} "
                f"({part.width}x{part.height} vs {first.width}x{first.height}, or other encoder settings)"
            )
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise MediaError(f"{output} is not a video file name; use .mp4, .mov or .mkv.")
    check_writable(output)
    rate = as_frame_rate(fps)
    time_base = 1 / rate
    delay = max(part.delay for part in parts)
    muxer = VIDEO_SUFFIXES[suffix]
    temp = output.parent / f".{output.name}.part-{secrets.token_hex(4)}"
    audio: _CopiedAudio | AudioCarrier | None = None
    total = 0
    try:
        options = {"movflags": "+faststart"} if muxer in _FASTSTART_FORMATS else {}
        with av.open(str(temp), mode="w", format=muxer, options=options) as container:
            container.metadata.update(metadata or {})
            with av.open(str(first.path)) as template:
                video = container.add_stream_from_template(template.streams.video[0])
            video.time_base = time_base
            if audio_from is not None:
                audio = _attach_audio(Path(audio_from), container)
            for part in parts:
                with av.open(str(part.path)) as source:
                    stream = source.streams.video[0]
                    decoded = 0
                    for packet in source.demux(stream):
                        if packet.size == 0:
                            continue
                        assert packet.pts is not None and packet.time_base is not None
                        frame = round(packet.pts * packet.time_base * rate)
                        packet.stream = video
                        packet.time_base = time_base
                        packet.pts = total + frame
                        packet.dts = total + decoded - delay
                        packet.duration = 1
                        container.mux(packet)
                        decoded += 1
                        if audio is not None:
                            audio.advance(float((total + decoded - delay) / rate))
                if decoded != part.frames:
                    raise MediaError(f"{part.path.name} changed while it was joined; join again.")
                total += decoded
            if audio is not None:
                carried, audio = audio, None
                carried.finish(float(total / rate))
        os.replace(temp, output)
    except av.FFmpegError as exc:
        raise MediaError(f"writing {output} failed ({exc}); check the free disk space.") from exc
    finally:
        if audio is not None:
            with contextlib.suppress(Exception):
                audio.close()
        temp.unlink(missing_ok=True)
    return total
