"""Joining animated segments into the final video: frames in order, sound once, no seams.

The joined frames go through ``open_writer`` with the driving video's exact frame rate and its
sound, which is exactly what the single-process pipeline does with the same frames; so the
result is the same video, and the audio is one continuous track cut to the last frame rather
than pieces that could click or drift at every boundary.
"""

import queue
import threading
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from animatica.errors import MediaError
from animatica.jobs.segment_file import iter_segment
from animatica.media.writer import open_writer


def _frames(parts: Sequence[Path]) -> Iterator[tuple[int, np.ndarray]]:
    """(segment index, frame) for every frame of every part, in order."""
    for index, part in enumerate(parts):
        for frame in iter_segment(part):
            yield index, frame


_END = object()


def _read_ahead(frames: Iterator[Any], depth: int = 16) -> Iterator[Any]:
    """``frames``, decoded on a second thread while the caller encodes: the join runs alone on its
    worker at the end of a job, and decoding the lossless segments (PyAV releases the GIL) then
    overlaps the final encode instead of adding to it. An error while decoding is raised here."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for frame in frames:
                if stop.is_set():
                    return
                ready.put(frame)
            ready.put(_END)
        except BaseException as exc:  # handed to the caller's thread
            ready.put(exc)

    thread = threading.Thread(target=read, name="join-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # let a reader blocked on a full queue see the stop
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(0.05)


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
    counts = [0] * len(parts)
    with open_writer(output, fps, audio_from=audio_from) as writer:
        for index, frame in _read_ahead(_frames(parts)):
            counts[index] += 1
            if expected_frames is not None:
                want = expected_frames[index]
                if want is not None and counts[index] > want:
                    raise MediaError(f"segment {index} has more than its {want} frames; re-run it.")
            writer.write(frame)
        if expected_frames is not None:
            for index, (got, want) in enumerate(zip(counts, expected_frames, strict=True)):
                if want is not None and got != want:
                    raise MediaError(f"segment {index} has {got} frames instead of {want}; re-run it.")
        total = writer.frames_written
    return total
