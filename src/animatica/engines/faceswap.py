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
from typing import Any

import numpy as np
import torch

from animatica.engines.base import StateError, check_state_dict
from animatica.engines.tracked_swap import TrackedSwapEngine, TrackedSwapState
from animatica.errors import AnimaticaError
from animatica.face.analyzer import as_rgb
from animatica.face.swap import BLENDS, SwapOptions, SwapSource, prepare_source, source_from_parts, swap_face

STATE_VERSION = 1  # of ``state_to_dict``'s layout


@dataclass(kw_only=True)
class FaceSwapState(TrackedSwapState):
    source: SwapSource


class FaceSwapEngine(TrackedSwapEngine):
    name = "faceswap"

    def __init__(
        self,
        *,
        keep_mouth: bool = True,
        keep_eyes: bool = True,
        blend: str = "poisson",
        lighting: bool = True,
        max_side: int = 512,
        work_side: int = 160,
        **tracking: Any,
    ) -> None:
        """``tracking``: the face choice and tracking options (`TrackedSwapEngine`)."""
        super().__init__(**tracking)
        if blend not in BLENDS:
            raise AnimaticaError(f"Unknown blend {blend!r}: use {' or '.join(BLENDS)}.")
        self.options = SwapOptions(keep_mouth=keep_mouth, keep_eyes=keep_eyes, blend=blend, lighting=lighting)  # type: ignore[arg-type]
        self.max_side = max_side
        self.work_side = work_side

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> FaceSwapState:
        photo = prepare_source(
            as_rgb(source),
            self.analyzer,
            what=self.photo_words,
            max_side=self.max_side,
            work_side=self.work_side,
        )
        return FaceSwapState(source=photo, tracks=self.new_tracks())

    def animate(self, state: FaceSwapState, driving: np.ndarray) -> np.ndarray:
        self.check_chunk(driving)
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
            **self.tracking_to_dict(state),
        }

    def state_from_dict(self, data: dict[str, Any]) -> FaceSwapState:
        from animatica.engines.landmarks import _array

        d = check_state_dict(data, self.name, STATE_VERSION)
        try:
            source = source_from_parts(_array(d["crop"]), _array(d["points"]), int(d["work_side"]))
            return FaceSwapState(source=source, **self.tracking_from_dict(d))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved faceswap state is incomplete or malformed ({exc!r})") from exc
