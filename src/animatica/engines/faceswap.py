"""The ``faceswap`` engine: put the face of one photo onto faces in a video, with no model weights.

Where an animation engine moves a photo with the motion of a video, this engine does the
reverse: the *video* is the picture that is kept, frame by frame at its own resolution, and the
photo lends it a face (``face.swap``). Which faces of the video are replaced is the engine's
``which`` option (``face.tracks``): the largest, all, the N-th from the left, or the person who
matches a reference identity (a 128-D embedding, as plain numbers, so that a job's options stay
plain data; `face.tracks.reference_embedding` makes it from a photo).

``prepare`` works on the photo only (its one face is found, landmarked and triangulated); the
initial video frame is not needed, since nothing is measured relative to it. ``animate`` tracks
the video's faces from frame to frame and smooths their landmarks, so chunks must come in order;
a segment that starts mid-video tracks ``warmup_frames`` frames before its first one
(``warm_up``: tracking and smoothing only, no rendering), by which time it has found the faces
and its smoothers have settled. A frame where no chosen face is in view is passed through
unchanged and counted (``frames_unchanged``).

The state saves as plain data (``state_to_dict``): the photo's face crop and landmarks (the
triangulation is rebuilt from them, deterministically) and the tracks' memory.
"""

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch

from animatica.engines.base import StateError, check_state_dict
from animatica.errors import AnimaticaError
from animatica.face.analyzer import DetectorName, as_rgb, get_analyzer
from animatica.face.swap import BLENDS, SwapOptions, SwapSource, prepare_source, source_from_parts, swap_face
from animatica.face.tracks import REFERENCE_THRESHOLD, FaceChoice, FaceTracks, load_tracks, tracks_to_dict

STATE_VERSION = 1  # of ``state_to_dict``'s layout


@dataclass
class FaceSwapState:
    source: SwapSource
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


class FaceSwapEngine:
    name = "faceswap"
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
        keep_mouth: bool = True,
        keep_eyes: bool = True,
        blend: str = "poisson",
        lighting: bool = True,
        detector: DetectorName = "hog",
        fps: float = 30.0,
        rescan_every: int = 8,
        max_side: int = 512,
        work_side: int = 160,
        source_name: str | None = None,
    ) -> None:
        self.choice = FaceChoice.parse(which)
        if blend not in BLENDS:
            raise AnimaticaError(f"Unknown blend {blend!r}: use {' or '.join(BLENDS)}.")
        if reference is not None and len(reference) != 128:
            raise AnimaticaError("A reference identity is a list of 128 numbers (a face embedding).")
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
        self.options = SwapOptions(keep_mouth=keep_mouth, keep_eyes=keep_eyes, blend=blend, lighting=lighting)  # type: ignore[arg-type]
        self.detector = detector
        self.fps = fps
        self.rescan_every = rescan_every
        self.max_side = max_side
        self.work_side = work_side
        self.source_name = source_name
        self.analyzer = get_analyzer(detector)

    @classmethod
    def load(cls, **options: Any) -> Self:
        """No weights to load; the face models are loaded (once per process) on first use."""
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

    def _tracks(self) -> FaceTracks:
        return FaceTracks(
            self.analyzer,
            choice=self.choice,
            reference=self.reference,
            threshold=self.reference_threshold,
            smoothing=self.smoothing,
            fps=self.fps,
            rescan_every=self.rescan_every,
        )

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> FaceSwapState:
        what = f"the face photo {self.source_name}" if self.source_name else "the face photo"
        photo = prepare_source(
            as_rgb(source), self.analyzer, what=what, max_side=self.max_side, work_side=self.work_side
        )
        return FaceSwapState(source=photo, tracks=self._tracks())

    def warm_up(self, state: FaceSwapState, driving: np.ndarray) -> None:
        """Track and smooth, render nothing; these frames belong to the segment before, so they are
        not counted."""
        for frame in driving:
            state.tracks(as_rgb(frame))

    def animate(self, state: FaceSwapState, driving: np.ndarray) -> np.ndarray:
        if driving.ndim != 4 or driving.shape[-1] != 3:
            raise AnimaticaError(f"Video frames must be a (N, H, W, 3) array, got shape {driving.shape}.")
        out = np.array(driving, dtype=np.uint8, copy=True)
        # The warp's tensors are small: one thread beats a fork-join over busy cores.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for frame in out:
                state.frames += 1
                faces = state.tracks(as_rgb(frame))
                swapped = [swap_face(frame, points, state.source, self.options) for _, points in faces]
                if not any(swapped):
                    state.frames_unchanged += 1
        finally:
            torch.set_num_threads(threads)
        return out

    def state_to_dict(self, state: FaceSwapState) -> dict[str, Any]:
        from animatica.engines.landmarks import _tensor

        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "crop": _tensor(state.source.crop),
            "points": _tensor(state.source.points),
            "work_side": int(self.work_side),
            "tracks": tracks_to_dict(state.tracks),
            "frames": int(state.frames),
            "frames_unchanged": int(state.frames_unchanged),
        }

    def state_from_dict(self, data: dict[str, Any]) -> FaceSwapState:
        from animatica.engines.landmarks import _array

        d = check_state_dict(data, self.name, STATE_VERSION)
        try:
            source = source_from_parts(_array(d["crop"]), _array(d["points"]), int(d["work_side"]))
            return FaceSwapState(
                source=source,
                tracks=load_tracks(self._tracks(), d["tracks"]),
                frames=int(d["frames"]),
                frames_unchanged=int(d["frames_unchanged"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved faceswap state is incomplete or malformed ({exc!r})") from exc
