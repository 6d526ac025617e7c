"""Carrying the sound of an input file into an output video, in step with the frames written.

The audio is always re-encoded to AAC (what every browser plays in MP4): that makes trimming
exact to the sample and makes any input codec work, at a cost far below one animated frame.
It is decoded and encoded in small pieces as the video advances, so nothing is buffered beyond
a fraction of a second.

Timing: output time 0 is the input's first video frame (its video stream's start time), so
the sound stays in sync with the animation of that video. Audio that starts later is preceded
by silence, audio before it is dropped, and audio past the last video frame is cut off.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.audio.stream
import av.container
import numpy as np

from animatica.errors import MediaError

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = frozenset({96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000})
_BITRATE_PER_CHANNEL = 64_000  # 128 kb/s stereo: transparent for speech, cheap to encode


class AudioCarrier:
    """Copies the first audio stream of ``source`` into ``output`` up to a moving end time.

    Create it with ``AudioCarrier.attach`` before the output container writes anything (the
    stream must exist before the header), call ``advance(t)`` as video up to ``t`` seconds is
    written, and ``finish(t)`` with the final video length.
    """

    def __init__(
        self,
        source: Path,
        source_container: av.container.InputContainer,
        output: av.container.OutputContainer,
    ) -> None:
        self._source = source
        self._input = source_container
        self._output = output
        in_stream = source_container.streams.audio[0]
        self.rate = in_stream.rate if in_stream.rate in _AAC_RATES else 48000
        channels = in_stream.channels or 2
        self.layout = "mono" if channels == 1 else "stereo"  # more channels are downmixed to stereo
        self._stream: av.audio.stream.AudioStream = output.add_stream("aac", rate=self.rate)
        self._stream.layout = self.layout
        self._stream.bit_rate = _BITRATE_PER_CHANNEL * (1 if channels == 1 else 2)
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        videos = source_container.streams.video
        if videos and videos[0].start_time is not None:
            self._origin = float(videos[0].start_time * videos[0].time_base)
        else:
            self._origin = 0.0
        self._chunks = self._decoded(in_stream)
        self._pending = np.zeros((1 if self.layout == "mono" else 2, 0), dtype=np.float32)
        self._started = False
        self._skip = 0  # samples still to drop because the sound starts before the video
        self._silence = 0  # silent samples still to write because the sound starts after it
        self._exhausted = False
        self._written = 0  # samples written, i.e. the output position of _pending[:, 0]

    @classmethod
    def attach(cls, source: Path, output: av.container.OutputContainer) -> AudioCarrier | None:
        """Open ``source`` and add an AAC stream to ``output``; None if ``source`` has no audio."""
        try:
            container = av.open(str(source), mode="r")
        except av.FFmpegError as exc:
            raise MediaError(
                f"{source} could not be opened to copy its sound ({exc.strerror or exc})."
            ) from exc
        if not container.streams.audio:
            container.close()
            return None
        try:
            return cls(source, container, output)
        except BaseException:
            container.close()
            raise

    def advance(self, until: float) -> None:
        """Write all audio up to ``until`` seconds of output time."""
        target = int(until * self.rate)
        while self._written < target:
            if self._silence:
                take = min(target - self._written, self._silence, self.rate)
                self._encode(np.zeros((self._pending.shape[0], take), dtype=np.float32))
                self._silence -= take
                continue
            if self._pending.shape[1] == 0 and not self._pull():
                return  # the sound is shorter than the video: it just ends
            take = min(target - self._written, self._pending.shape[1])
            if take == 0:
                continue  # a piece wholly before the video was dropped: nothing to encode yet
            self._encode(self._pending[:, :take])
            self._pending = self._pending[:, take:]

    def finish(self, end: float) -> None:
        """Write the audio up to ``end`` (the video's length), flush the encoder, close the input."""
        try:
            self.advance(end)
            for packet in self._stream.encode(None):
                self._output.mux(packet)
        finally:
            self.close()

    def close(self) -> None:
        self._chunks.close()
        self._input.close()

    def _decoded(self, in_stream: av.audio.stream.AudioStream) -> Iterator[tuple[float | None, np.ndarray]]:
        """Resampled input audio as (start time or None, ``(channels, samples)`` float32)."""
        count = 0
        try:
            for frame in self._input.decode(in_stream):
                start = frame.time
                for out in self._resampler.resample(frame):
                    yield start, out.to_ndarray()
                    start = None  # the resampler's later pieces follow on directly
                count += 1
            for out in self._resampler.resample(None):
                yield None, out.to_ndarray()
        except av.FFmpegError as exc:
            raise MediaError(
                f"{self._source}: audio frame {count} could not be decoded ({exc.strerror or exc}); "
                "the file is damaged, export it again."
            ) from exc

    def _pull(self) -> bool:
        """Append the next decoded piece to the pending samples; False when the input is done."""
        if self._exhausted:
            return False
        try:
            start, samples = next(self._chunks)
        except StopIteration:
            self._exhausted = True
            return False
        if not self._started:
            self._started = True
            offset = round(((start if start is not None else self._origin) - self._origin) * self.rate)
            self._silence = max(0, offset)
            self._skip = max(0, -offset)
        if self._skip:
            dropped = min(self._skip, samples.shape[1])
            samples = samples[:, dropped:]
            self._skip -= dropped
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)], axis=1)
        return True

    def _encode(self, samples: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout=self.layout)
        frame.sample_rate = self.rate
        frame.pts = self._written
        frame.time_base = Fraction(1, self.rate)
        for packet in self._stream.encode(frame):
            self._output.mux(packet)
        self._written += samples.shape[1]
