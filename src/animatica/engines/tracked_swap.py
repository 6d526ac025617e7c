"""What every swap engine shares: choosing and following the video's faces, and counting frames.

A swap engine differs from another only in how it paints a new face onto a tracked one; which
faces (``face.tracks``: largest, all, index, or the person matching a reference identity), how
their landmarks are smoothed, how a segment warms its tracks up before its first frame, how the
frames without a chosen face are counted and reported, how a video with no face at all is
refused, and how the tracks' memory is saved are the same, so a choice made for a job means one
thing whichever engine runs it.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np

from animatica.errors import AnimaticaError
from animatica.face.analyzer import DetectorName, as_rgb, get_analyzer
from animatica.face.tracks import (
    REFERENCE_THRESHOLD,
    FaceChoice,
    FaceTracks,
    load_tracks,
    require_face_in_video,
    tracks_to_dict,
)

REFERENCE_SIZE = 128  # numbers in a reference identity (the face toolkit's embedding)


@dataclass(kw_only=True)
class TrackedSwapState:
    tracks: FaceTracks
    frames: int = 0  # frames rendered
    frames_unchanged: int = 0  # of them, frames with no chosen face to swap

    @property
    def face_notes(self) -> list[str]:
        """What a user should hear about the video's faces (the pipeline prints these)."""
        if not self.frames_unchanged:
            return []
        if self.frames_unchanged == self.frames:
            return [f"No face to swap was found in any of the {self.frames} frames; the video is unchanged."]
        return [
            f"{self.frames_unchanged} of {self.frames} frames had no face to swap and were left unchanged."
        ]


class TrackedSwapEngine:
    """The face choice and tracking half of a swap engine (see the module's docstring)."""

    name = "swap"
    frame_size: tuple[int, int] | None = None
    # Frames a segment starts early (and drops) so its tracks have found the faces and the
    # landmark smoothers have settled by its first frame, as in the landmarks engine.
    warmup_frames = 12

    def __init__(
        self,
        *,
        which: str = "largest",
        reference: list[float] | None = None,
        reference_threshold: float = REFERENCE_THRESHOLD,
        smoothing: float = 0.5,
        detector: DetectorName = "hog",
        fps: float = 30.0,
        rescan_every: int = 8,
        source_name: str | None = None,
    ) -> None:
        self.choice = FaceChoice.parse(which)
        if reference is not None and len(reference) != REFERENCE_SIZE:
            raise AnimaticaError(
                f"A reference identity is a list of {REFERENCE_SIZE} numbers (a face embedding)."
            )
        if self.choice.mode == "reference" and reference is None:
            raise AnimaticaError("Choosing the face by reference needs a reference photo (--reference).")
        if not 0.0 < reference_threshold < 2.0:
            raise AnimaticaError(
                f"The reference threshold must be between 0 and 2, got {reference_threshold}."
            )
        if not 0.0 <= smoothing <= 1.0:
            raise AnimaticaError(f"Smoothing must be between 0 and 1, got {smoothing}.")
        if rescan_every < 1:
            raise AnimaticaError(f"rescan_every must be at least 1, got {rescan_every}.")
        self.reference = None if reference is None else np.asarray(reference, dtype=np.float32)
        self.reference_threshold = reference_threshold
        self.smoothing = smoothing
        self.detector = detector
        self.fps = fps
        self.rescan_every = rescan_every
        self.source_name = source_name
        self.analyzer = get_analyzer(detector)

    @property
    def photo_words(self) -> str:
        """How messages name the face photo."""
        return f"the face photo {self.source_name}" if self.source_name else "the face photo"

    @classmethod
    def load(cls, **options: Any) -> Self:
        """A swap engine's own files (if any) are read by its constructor; the face models, shared
        by all, once per process on first use or by `preload`."""
        return cls(**options)

    def preload(self) -> None:
        """The face models (seconds to read) are loaded here, not by the first frame of the first job."""
        from animatica.face import models

        models.frontal_detector()
        models.shape_predictor_68()
        models.shape_predictor_5()
        models.face_encoder()
        if self.detector == "cnn":
            models.cnn_detector()

    def new_tracks(self) -> FaceTracks:
        return FaceTracks(
            self.analyzer,
            choice=self.choice,
            reference=self.reference,
            threshold=self.reference_threshold,
            smoothing=self.smoothing,
            fps=self.fps,
            rescan_every=self.rescan_every,
        )

    def check_driving(self, frames: Iterator[np.ndarray], fps: float | None) -> None:
        """A video without any face is refused before a frame is rendered (``face.tracks``)."""
        require_face_in_video(self.analyzer, frames, fps)

    def warm_up(self, state: TrackedSwapState, driving: np.ndarray) -> None:
        """Track and smooth, render nothing; these frames belong to the segment before, so they are
        not counted."""
        for frame in driving:
            state.tracks(as_rgb(frame))

    @staticmethod
    def check_chunk(driving: np.ndarray) -> None:
        if driving.ndim != 4 or driving.shape[-1] != 3:
            raise AnimaticaError(f"Video frames must be a (N, H, W, 3) array, got shape {driving.shape}.")

    @staticmethod
    def tracking_to_dict(state: TrackedSwapState) -> dict[str, Any]:
        """The tracked half of a state as plain data (merged into the engine's state dict)."""
        return {
            "tracks": tracks_to_dict(state.tracks),
            "frames": int(state.frames),
            "frames_unchanged": int(state.frames_unchanged),
        }

    def tracking_from_dict(self, data: dict[str, Any]) -> dict[str, Any]:
        """``TrackedSwapState``'s fields from `tracking_to_dict`'s output (KeyError etc. when incomplete)."""
        return {
            "tracks": load_tracks(self.new_tracks(), data["tracks"]),
            "frames": int(data["frames"]),
            "frames_unchanged": int(data["frames_unchanged"]),
        }
