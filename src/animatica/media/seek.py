"""Starting a video's decode at frame ``start`` without decoding the whole video before it.

Frame ``n`` is, by definition, the n-th frame a plain decode from the first packet outputs.
A seek lands on a keyframe by timestamp, so the frame index has to become the presentation
timestamp (pts) that a plain decode gives frame ``n``. Two mappings are trusted:

* a regular grid: the container's index lists every sample (MP4, MOV, AVI), their decode
  timestamps are spaced by exactly one frame at the stream's average rate and no sample is
  empty; then frame ``n`` shows at ``first_pts + n * step`` (B-frames only reorder frames
  within the grid). This costs no reading at all.
* a packet scan: when packets arrive in presentation order (no B-frames, e.g. VP8/VP9 WebM,
  GIF, variable-rate phone videos), packet ``n`` is frame ``n``, so reading (not decoding) the
  first ``n`` packets gives the pts. Demuxing costs a small fraction of decoding.

Everything else (variable frame rate with B-frames, empty or discarded samples after the
start, missing timestamps) decodes from the beginning, and so does any plan that does not
hold once decoding: the first frame at or after the target must carry exactly the target
pts, checked before a single frame is handed on. Frames before ``start`` are never converted
to RGB, which is most of their cost after decoding.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path

import av
import av.container
import av.video.frame
import av.video.stream
import numpy as np

from animatica.media.container import open_video

# Keyframes tried before giving up on a plan: a keyframe whose decode timestamp is before the
# target can still show after it (B-frame delay), then the one before it is the right one.
_ENTRY_TRIES = 3

Frames = Iterator[av.video.frame.VideoFrame]


@dataclass(frozen=True)
class SeekPlan:
    """Where frame ``start`` is: its pts (None past the last frame) and keyframes to seek to."""

    target: int | None
    entry_points: tuple[int, ...]  # seek timestamps in the stream's time base, latest first


def decode_video(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Frames:
    """Every video frame the reader decodes comes through here, so tests can count decoding work."""
    yield from container.decode(stream)


def open_at(
    path: Path, start: int, stack: contextlib.ExitStack
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, int, Frames]:
    """Open ``path`` and decode from as late a point as still yields frame ``start`` exactly.

    Returns the container, its video stream, the index of the first frame the iterator yields
    (``start`` after a successful seek, else 0) and the decoded frames. Containers are closed
    by ``stack``. Decoding errors are left to the caller, which knows how to name the frame.
    """
    if start < 0:
        raise ValueError(f"start must be 0 or more, got {start}")
    plan = plan_seek(path, start) if start > 0 else None
    container = _open(path, stack)
    stream = container.streams.video[0]
    if plan is not None:
        frames = _position(container, stream, plan)
        if frames is not None:
            return container, stream, start, frames
        container.close()  # the plan did not hold: a fresh container decodes from the very start
        container = _open(path, stack)
        stream = container.streams.video[0]
    return container, stream, 0, decode_video(container, stream)


def _open(path: Path, stack: contextlib.ExitStack) -> av.container.InputContainer:
    container = open_video(path)
    stack.callback(container.close)  # closing twice is harmless
    container.streams.video[0].thread_type = "AUTO"  # frame + slice threads, bounded memory
    return container


def plan_seek(path: Path, start: int) -> SeekPlan | None:
    """Find the pts of frame ``start`` and keyframes to seek to, or None to decode from 0.

    None also when the nearest keyframe is the first one: seeking would save nothing.
    """
    container = open_video(path)
    try:
        stream = container.streams.video[0]
        return _grid_plan(container, stream, start) or _scan_plan(container, stream, start)
    except av.FFmpegError:
        return None  # the plain decode reports the damage, naming the frame
    finally:
        container.close()


def _grid_plan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: int
) -> SeekPlan | None:
    entries = stream.index_entries
    count = len(entries)
    rate = stream.average_rate
    if count < 2 or stream.frames != count or not rate or stream.time_base is None:
        return None  # no index of every sample (Matroska only indexes keyframes, GIF nothing)
    step = 1 / (Fraction(rate) * Fraction(stream.time_base))
    if step.denominator != 1:
        return None  # the frame duration is not a whole tick: timestamps are rounded, not a grid
    listed = list(entries)
    stamps = np.fromiter((entry.timestamp for entry in listed), np.int64, count)
    if not np.all(np.diff(stamps) == step.numerator):
        return None  # variable frame rate, or several edits spliced together
    if any(entry.size == 0 for entry in listed):
        return None  # an empty sample (AVI's dropped frame) decodes to no frame
    key_positions = [position for position, entry in enumerate(listed) if entry.is_keyframe]
    discards = [position for position, entry in enumerate(listed) if entry.is_discard]
    if len(key_positions) < 2:
        return None  # one keyframe: nothing to skip
    if discards and discards[-1] >= key_positions[1]:
        return None  # an edit list cutting the middle: the decoded frames leave the grid
    # Samples an edit list hides (trimmed by a stream copy) lie before the first kept frame in
    # display order and never come out of the decoder; the first frame that does anchors the grid.
    first = next(decode_video(container, stream), None)
    if first is None or first.pts is None:
        return None
    target = first.pts + start * step.numerator if start < count - len(discards) else None
    # A keyframe shows some frames after its decode timestamp (B-frame delay). The first kept
    # sample gives at least that delay, so the keyframes chosen show no later than the target;
    # if one does after all, ``_position`` tries the one before.
    kept = next((position for position in range(count) if not listed[position].is_discard), 0)
    delay = max(0, first.pts - int(stamps[kept]))
    keys = [int(stamps[position]) for position in key_positions]
    latest = [key for key in keys if target is None or key + delay <= target]
    if not latest or latest[-1] == keys[0]:
        return None
    return SeekPlan(target, tuple(reversed(latest[-_ENTRY_TRIES:])))


def _scan_plan(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: int
) -> SeekPlan | None:
    if stream.codec_context.has_b_frames:
        return None  # packets are reordered: packet n is not frame n
    keys: list[int] = []
    previous: int | None = None
    target: int | None = None
    count = 0
    for packet in container.demux(stream):
        if packet.pts is None and packet.size == 0:
            continue  # the end-of-stream marker
        if packet.pts is None or packet.size == 0 or packet.is_discard:
            return None  # a packet that decodes to no frame, or to one of unknown time
        if previous is not None and packet.pts <= previous:
            return None  # out of presentation order after all
        if count == 0 and not packet.is_keyframe:
            return None  # the decoder may drop the frames before the first keyframe
        previous = packet.pts
        if packet.is_keyframe:
            keys.append(packet.pts)
        if count == start:
            target = packet.pts
            break
        count += 1
    if len(keys) < 2:
        return None  # only the first frame is a keyframe (always so in GIF): nothing to skip
    return SeekPlan(target, tuple(reversed(keys[-_ENTRY_TRIES:])))


def _position(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    plan: SeekPlan,
) -> Frames | None:
    """Seek and decode up to the target; frames starting with it, or None if the plan fails."""
    for entry in plan.entry_points:
        try:
            container.seek(entry, stream=stream, backward=True, any_frame=False)
            frames = decode_video(container, stream)
            first = next(frames, None)
            if first is None or first.pts is None:
                return None
            if plan.target is not None and first.pts > plan.target:
                continue  # landed after the target: try the keyframe before
            for frame in chain([first], frames):
                if frame.pts is None:
                    return None
                if plan.target is None or frame.pts < plan.target:
                    continue
                if frame.pts != plan.target:
                    return None  # the target pts is not a frame here: the mapping was wrong
                return chain([frame], frames)
        except av.FFmpegError:
            return None  # decoding from the start will report it with the right frame index
        # The stream ended without reaching the target.
        return iter(()) if plan.target is None else None
    return None
