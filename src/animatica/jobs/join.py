"""Joining encoded segments into the final video: frames in order, sound once, no re-encode.

Segments arrive already encoded (`segment_file`), so the join copies their packets into one MP4
(`media.concat`): the seconds it takes do not grow with the engine or the frame size, which keeps
the serial step after the parallel segments short. The sound is the driving video's, carried once
for the whole result, never in pieces that could click or drift at a seam.

Every segment is checked before anything is written: a segment missing, cut short, damaged, encoded
differently or holding another number of frames than it reported fails the join, names the
segment, and leaves no result; a missing or doubled frame would shift the sound against the
picture for the rest of the video.
"""

from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path

from animatica.errors import MediaError
from animatica.media.concat import VideoPart, concat_parts, inspect_part


def _inspect(index: int, path: Path, fps: Fraction, want: int | None) -> VideoPart:
    try:
        part = inspect_part(path, fps)
    except MediaError as exc:
        raise MediaError(f"segment {index}: {exc}; animate that segment again.") from exc
    if want is not None and part.frames != want:
        raise MediaError(f"segment {index} has {part.frames} frames instead of {want}; animate it again.")
    return part


def join_segments(
    parts: Sequence[Path],
    output: Path,
    fps: Fraction,
    audio_from: Path | None = None,
    expected_frames: Sequence[int | None] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> int:
    """Join segment files into the video ``output``; returns the number of frames written.

    ``expected_frames`` gives each segment's frame count as its worker reported it (None where
    unknown). ``metadata`` becomes the video's container tags.
    """
    if not parts:
        raise MediaError("there are no segments to join")
    if expected_frames is None:
        expected_frames = [None] * len(parts)
    if len(expected_frames) != len(parts):
        raise ValueError("expected_frames must give one count per segment")
    checked = [
        _inspect(index, Path(path), fps, want)
        for index, (path, want) in enumerate(zip(parts, expected_frames, strict=True))
    ]
    first = checked[0]
    for index, part in enumerate(checked[1:], start=1):
        if (part.width, part.height, part.extradata) != (first.width, first.height, first.extradata):
            raise MediaError(
                f"segment {index} was encoded with other settings than segment 0 ({part.width}x"
                f"{part.height} vs {first.width}x{first.height}, or another encoder); animate it again."
            )
    return concat_parts(checked, output, fps, audio_from, metadata)
