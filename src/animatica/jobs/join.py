"""Joining animated segments into the final video: frames in order, sound once, no seams.

The joined frames go through ``open_writer`` with the driving video's exact frame rate and its
sound, which is exactly what the single-process pipeline does with the same frames; so the
result is the same video, and the audio is one continuous track cut to the last frame rather
than pieces that could click or drift at every boundary.
"""

from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from animatica.errors import MediaError
from animatica.jobs.segment_file import iter_segment
from animatica.media.writer import open_writer


def _frames(parts: Sequence[Path], counts: list[int]) -> Iterator[np.ndarray]:
    for part in parts:
        counts.append(0)
        for frame in iter_segment(part):
            counts[-1] += 1
            yield frame


def join_segments(
    parts: Sequence[Path],
    output: Path,
    fps: Fraction,
    audio_from: Path | None = None,
    expected_frames: Sequence[int | None] | None = None,
) -> int:
    """Concatenate segment files into ``output``; returns the number of frames written.

    ``expected_frames`` gives each segment's frame count (None where unknown): a segment that
    holds another number of frames fails the join and nothing is written, since a missing or
    doubled frame would shift the sound against the picture for the rest of the video.
    """
    if not parts:
        raise MediaError("there are no segments to join")
    if expected_frames is not None and len(expected_frames) != len(parts):
        raise ValueError("expected_frames must give one count per segment")
    counts: list[int] = []
    with open_writer(output, fps, audio_from=audio_from) as writer:
        for frame in _frames(parts, counts):
            if expected_frames is not None:
                want = expected_frames[len(counts) - 1]
                if want is not None and counts[-1] > want:
                    raise MediaError(f"segment {len(counts) - 1} has more than its {want} frames; re-run it.")
            writer.write(frame)
        if expected_frames is not None:
            for index, (got, want) in enumerate(zip(counts, expected_frames, strict=True)):
                if want is not None and got != want:
                    raise MediaError(f"segment {index} has {got} frames instead of {want}; re-run it.")
        total = writer.frames_written
    return total
