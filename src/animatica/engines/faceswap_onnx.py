"""The ``faceswap-onnx`` engine: the operator's own identity-injection swapper, run with onnxruntime.

It chooses, follows and smooths the video's faces exactly as the weights-free ``faceswap``
engine does (``engines.tracked_swap``); only the painting differs. ``prepare`` finds the photo's
one face, aligns it for the recogniser and turns its identity into the swapper's latent; that
latent (512 numbers) is all a state keeps of the photo, so a segment on another worker needs
neither the photo nor the recogniser's answer again. ``animate`` tracks every frame of a chunk
first, then aligns every chosen face of the chunk into one batch for the swapper (one run per
chunk, when the model takes batches), then pastes each result back (``face.onnx_swap``).

The two model files are the operator's (``swap_model``, ``identity_model``: paths, given by the
caller from its settings; a job row never carries them) and are loaded once per process.
"""

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from animatica.engines.base import StateError, check_state_dict
from animatica.engines.tracked_swap import TrackedSwapEngine, TrackedSwapState
from animatica.errors import AnimaticaError
from animatica.face import onnx_swap as ox
from animatica.face.analyzer import as_rgb
from animatica.face.tracks import single_face

STATE_VERSION = 1  # of ``state_to_dict``'s layout
TRACKING_OPTIONS = frozenset(inspect.signature(TrackedSwapEngine.__init__).parameters) - {"self"}


@dataclass(kw_only=True)
class OnnxSwapState(TrackedSwapState):
    latent: np.ndarray  # (512,) the photo's identity as the swapper takes it


class OnnxSwapEngine(TrackedSwapEngine):
    name = "faceswap-onnx"

    def __init__(
        self,
        *,
        swap_model: str = "",
        identity_model: str = "",
        threads: int = 0,
        **tracking: Any,
    ) -> None:
        """``tracking``: the face choice and tracking options (`TrackedSwapEngine`); ``threads``:
        onnxruntime's threads per model (0: its default, one per core)."""
        unknown = sorted(set(tracking) - TRACKING_OPTIONS)
        if unknown:
            raise AnimaticaError(
                f"The {self.name} engine has no option {', '.join(unknown)}: the model paints the whole "
                "face itself (blend, keep_eyes and keep_mouth are the faceswap engine's)."
            )
        super().__init__(**tracking)
        files = ox.SwapModelFiles(swap_model, identity_model)
        self.models = ox.load_models(files, threads)

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray) -> OnnxSwapState:
        photo = as_rgb(source)
        box = single_face(photo, self.analyzer, self.photo_words)
        points = self.analyzer.landmarks(photo, box).astype(np.float64)
        matrix = ox.alignment(points, ox.ARCFACE_112)
        crop = ox.aligned_crop(photo, matrix, ox.IDENTITY_SIDE)
        embedding = self.models.identity.embed(crop[None])[0]
        return OnnxSwapState(latent=self.models.swapper.latent(embedding), tracks=self.new_tracks())

    def animate(self, state: OnnxSwapState, driving: np.ndarray) -> np.ndarray:
        self.check_chunk(driving)
        out = np.array(driving, dtype=np.uint8, copy=True)
        faces: list[tuple[int, np.ndarray]] = []  # (frame in the chunk, frame-to-crop similarity)
        for index, frame in enumerate(out):
            for _, points in state.tracks(as_rgb(frame)):
                faces.append((index, ox.alignment(points, ox.SWAP_TEMPLATE)))
        swapped_frames: set[int] = set()
        if faces:
            crops = np.stack([ox.aligned_crop(out[i], m, ox.SWAP_SIDE) for i, m in faces])
            swapped = self.models.swapper.swap(crops, state.latent)
            for (index, matrix), face in zip(faces, swapped, strict=True):
                if ox.paste_back(out[index], face, matrix):
                    swapped_frames.add(index)
        state.frames += len(out)
        state.frames_unchanged += len(out) - len(swapped_frames)
        return out

    def state_to_dict(self, state: OnnxSwapState) -> dict[str, Any]:
        from animatica.engines.landmarks import _tensor

        return {
            "engine": self.name,
            "version": STATE_VERSION,
            "latent": _tensor(state.latent.astype(np.float32)),
            **self.tracking_to_dict(state),
        }

    def state_from_dict(self, data: dict[str, Any]) -> OnnxSwapState:
        from animatica.engines.landmarks import _array

        d = check_state_dict(data, self.name, STATE_VERSION)
        try:
            latent = np.asarray(_array(d["latent"]), dtype=np.float32)
            if latent.shape != (ox.EMBEDDING_SIZE,):
                raise ValueError(f"a latent of shape {latent.shape}")
            return OnnxSwapState(latent=latent, **self.tracking_from_dict(d))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateError(f"the saved {self.name} state is incomplete or malformed ({exc!r})") from exc


def model_files_message() -> str:
    """What the engine needs, for a user who asked for it without the two files."""
    return (
        f"The {OnnxSwapEngine.name} engine runs your own ONNX models: set {ox.SWAPPER.setting} to "
        f"{ox.SWAPPER.expected}, and {ox.IDENTITY.setting} to {ox.IDENTITY.expected}."
    )


def check_model_files(swap_model: str, identity_model: str) -> None:
    """Refuse a request for this engine when either file is not configured or not there, without
    loading anything (a web process checks a submission this way; the worker loads the models)."""
    for role, value in ((ox.SWAPPER, swap_model), (ox.IDENTITY, identity_model)):
        if not value.strip():
            raise AnimaticaError(model_files_message())
        if not Path(value.strip()).is_file():
            raise ox.ModelFileError(
                f"The {role.title} {Path(value).name} ({role.setting}) does not exist: set {role.setting} "
                f"to {role.expected}."
            )
