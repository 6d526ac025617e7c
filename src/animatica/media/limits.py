"""How much media a caller lets the readers decode: the decompression-bomb and length guards.

The readers never look these up themselves; whoever starts the work (a command, the service at
start-up) builds one ``MediaLimits`` from its settings and hands it down with every call, so a
check running in another process obeys the limits of the process that asked for it.
"""

from dataclasses import dataclass
from typing import Protocol


class _HasMediaLimits(Protocol):
    max_image_pixels: int
    max_video_frames: int


@dataclass(frozen=True)
class MediaLimits:
    """``max_image_pixels``: pictures (and video frames) with more pixels are refused from their
    header, before decoding. ``max_video_frames``: longer videos and frame folders are refused.
    The defaults are those of ``animatica.settings.Settings``."""

    max_image_pixels: int = 64_000_000
    max_video_frames: int = 100_000

    @classmethod
    def from_settings(cls, settings: _HasMediaLimits) -> "MediaLimits":
        """The limits a ``Settings`` object (or anything with the same two fields) sets."""
        return cls(settings.max_image_pixels, settings.max_video_frames)


DEFAULT_LIMITS = MediaLimits()
