"""Cutting a driving video into segments by frame index, so that workers can animate them apart.

Boundaries are frame numbers, not times: a time would have to be rounded to a frame on each
worker, and a frame rounded twice is a frame lost or shown twice at the seam. Segments are
half-open ranges ``[start, stop)`` that tile ``[0, frame_count)`` exactly.
"""

from dataclasses import dataclass
from fractions import Fraction

from animatica.errors import AnimaticaError


@dataclass(frozen=True)
class Segment:
    index: int
    start: int
    stop: int | None  # None: to the end of the video (its length is only estimated)

    @property
    def frames(self) -> int | None:
        return None if self.stop is None else self.stop - self.start


def frames_per_segment(frame_rate: Fraction | None, seconds: float) -> int:
    """Whole frames in one segment of about ``seconds``; frame folders count as 25 fps."""
    if seconds <= 0:
        raise AnimaticaError(f"the segment length must be positive, got {seconds} s")
    rate = frame_rate if frame_rate is not None and frame_rate > 0 else Fraction(25)
    return max(1, round(seconds * rate))


def plan_segments(
    frame_count: int, frame_rate: Fraction | None, seconds: float, exact: bool = True
) -> list[Segment]:
    """The segments of a video of ``frame_count`` frames.

    When the count is only an estimate (``exact`` False: Matroska, WebM), the last segment runs
    to the real end of the video instead of stopping at the estimate, so no frame is dropped.
    """
    if frame_count < 1:
        raise AnimaticaError("the driving video has no frames to animate")
    size = frames_per_segment(frame_rate, seconds)
    starts = list(range(0, frame_count, size))
    segments = [Segment(i, start, min(start + size, frame_count)) for i, start in enumerate(starts)]
    if not exact:
        last = segments[-1]
        segments[-1] = Segment(last.index, last.start, None)
    return segments


def segment_key(job_id: str, index: int) -> str:
    """Where a segment's frames are stored: one fixed key, so a re-run overwrites, never adds."""
    return f"jobs/{job_id}/segments/{index:05d}.mkv"


def segments_prefix(job_id: str) -> str:
    return f"jobs/{job_id}/segments/"
