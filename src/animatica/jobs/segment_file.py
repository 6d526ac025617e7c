"""Segment files: a worker's animated frames, already encoded as they will appear in the result.

Each segment is encoded by the worker that animated it, with the writer and settings of a
single-process run (`media.writer.VideoWriter`: H.264, yuv420p, BT.709, CRF 18), starting with a
keyframe, in Matroska. The join then only copies the segments' packets one after another
(`media.concat`), so the encode, which does not get faster with threads at these frame sizes, runs
on every worker in parallel instead of once, alone, after the last segment.

What that gives up: the result is no longer identical frame by frame to a single-process run. Each
segment's encoder starts afresh (a keyframe at every seam, its own rate control), so frames differ
from the single run's by encoder noise, well under what CRF 18 itself takes from the picture.
"""

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from animatica.errors import MediaError
from animatica.media.writer import VideoWriter


def write_segment(frames: Iterable[np.ndarray], output: Path, fps: Fraction) -> int:
    """Encode ``(H, W, 3)`` uint8 frames into ``output`` (``.mkv``) atomically; returns how many."""
    with VideoWriter(output, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written


def iter_segment(path: Path) -> Iterator[np.ndarray]:
    """The frames of a segment file, in order, as ``(H, W, 3)`` uint8 RGB arrays."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
    except av.FFmpegError as exc:
        raise MediaError(f"the segment {path.name} is damaged ({exc}); animate that segment again.") from exc
