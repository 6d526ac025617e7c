"""Run an operator's own face-swap models: an identity-injection swapper and the recogniser that
makes its identity vector, both ONNX files run with onnxruntime.

The models of this kind that people use (an ``inswapper_128``-style swapper with an ArcFace
``w600k``-style recogniser) are not ours to ship, so the operator points two settings at the
files; this module only has to agree with their conventions, which are fixed by how they were
trained:
 - The recogniser sees a 112x112 RGB face, aligned by a similarity that puts five points (eye
   centres, nose tip, mouth corners) on the ArcFace template, as ``(x - 127.5) / 127.5``; it
   answers 512 numbers, compared after L2 normalisation.
 - The swapper sees the target face aligned to the same template in a 128x128 crop (the
   template is not scaled but centred: 8 pixels further right, as the model was trained), RGB in
   0..1, plus a 512-D latent; it answers the swapped crop, RGB in 0..1. The latent is the
   normalised embedding times a 512x512 matrix stored as the graph's last initializer ("emap"),
   normalised again: without that matrix the identity lands in the wrong space and the output
   looks like nobody.
The five points come from our 68 landmarks, so the swap follows the same tracked and smoothed
faces as the weights-free engine. The swapped crop goes back with the inverse similarity under a
mask made once in crop space (a border eroded away, then blurred), so the seam is soft and
nothing outside the crop changes; the swapper's own colours are kept (it already matched them
to the target crop it was given).

Loading checks every file against the signature it must have and says which setting names a
wrong or missing file and what belongs there; an onnxruntime message never reaches a user. A
file's path is shown by name only, since the message may reach a service user.
"""

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from animatica.errors import AnimaticaError
from animatica.face import geometry as g

# Five points of a face in a 112x112 crop: the eye in the picture's left, the other eye, the nose
# tip, the left and the right mouth corner.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
IDENTITY_SIDE = 112
SWAP_SIDE = 128
SWAP_TEMPLATE = ARCFACE_112 + np.array([8.0, 0.0])
EMBEDDING_SIZE = 512
# What a crop's border loses to the paste-back mask, in crop fractions: the swapper's output is
# least reliable at its edge, and the blur needs room inside the crop to fade out.
MASK_ERODE = 0.12
MASK_BLUR = 0.04


class ModelFileError(AnimaticaError):
    """A swap model file that is missing, unreadable or not of the signature its setting asks for."""


@dataclass(frozen=True)
class ModelRole:
    """One of the two files: which setting names it, and what it must be."""

    setting: str
    title: str
    expected: str


SWAPPER = ModelRole(
    "ANIMATICA_SWAP_MODEL",
    "face swapper model",
    "an identity-injection face swapper of the inswapper_128 kind (.onnx): inputs 'target' float32 "
    "(N, 3, 128, 128) and 'source' float32 (1, 512), one output (N, 3, 128, 128), and a 512x512 "
    "identity matrix as its last initializer",
)
IDENTITY = ModelRole(
    "ANIMATICA_SWAP_IDENTITY_MODEL",
    "face identity model",
    "an ArcFace-style face recogniser (.onnx, such as w600k_r50): one input float32 "
    "(N, 3, 112, 112) and one output (N, 512)",
)


@dataclass(frozen=True)
class SwapModelFiles:
    """Where the operator keeps the two files (empty: not configured)."""

    swapper: str = ""
    identity: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.swapper.strip() and self.identity.strip())

    def engine_options(self) -> dict[str, str]:
        """The options of the ``faceswap-onnx`` engine that name these files."""
        return {"swap_model": self.swapper.strip(), "identity_model": self.identity.strip()}


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The template's five points from 68 landmarks (iBUG layout), in the template's order."""
    return np.array(
        [
            landmarks[g.RIGHT_EYE].mean(axis=0),  # on the picture's left, like the template's first
            landmarks[g.LEFT_EYE].mean(axis=0),
            landmarks[30],  # nose tip
            landmarks[48],
            landmarks[54],
        ],
        dtype=np.float64,
    )


def alignment(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The similarity ``(2, 3)`` from image pixels to the crop that puts the face on ``template``."""
    return g.fit_similarity(five_points(landmarks), template)


def aligned_crop(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """The ``side`` x ``side`` crop that ``matrix`` (image to crop) cuts out of ``image``."""
    return cv2.warpAffine(
        image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


# --- loading ---------------------------------------------------------------------------------


def _dims(shape: Any) -> tuple[int | None, ...]:
    """A declared ONNX shape with symbolic or unknown dimensions as None."""
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def _fits(shape: tuple[int | None, ...], expected: tuple[int | None, ...]) -> bool:
    """Whether a declared shape admits ``expected`` (None: any size), a symbolic one admitting all."""
    return len(shape) == len(expected) and all(
        want is None or have is None or have == want for have, want in zip(shape, expected, strict=True)
    )


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


def _wrong(path: Path, role: ModelRole, found: str) -> ModelFileError:
    return ModelFileError(
        f"{path.name} ({role.setting}) is not the {role.title} expected: it should be {role.expected}; "
        f"{found}."
    )


def _runtime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise AnimaticaError(
            "The faceswap-onnx engine needs onnxruntime and onnx: pip install 'animatica[onnx]'."
        ) from error
    return onnxruntime


def _session(path: Path, role: ModelRole, threads: int) -> Any:
    if not path.is_file():
        raise ModelFileError(
            f"The {role.title} {path.name} ({role.setting}) does not exist: set {role.setting} to "
            f"{role.expected}."
        )
    ort = _runtime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # a model's warnings are no user's business
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types for unreadable or invalid graphs
        raise _wrong(path, role, f"onnxruntime cannot load it ({type(error).__name__})") from None


@dataclass(frozen=True)
class _Port:
    name: str
    shape: tuple[int | None, ...]
    kind: str  # onnxruntime's element type, e.g. "tensor(float)"


def _ports(values: Any) -> list[_Port]:
    return [_Port(v.name, _dims(v.shape), v.type) for v in values]


def _describe(ports: list[_Port]) -> str:
    def one(port: _Port) -> str:
        kind = "" if port.kind == "tensor(float)" else f" of {port.kind.removeprefix('tensor(').rstrip(')')}"
        return f"'{port.name}' {_show(port.shape)}{kind}"

    return ", ".join(one(p) for p in ports) or "none"


def _batch(ports: list[_Port]) -> int | None:
    """The batch a graph takes: 1 when a port fixes it so, None when it is free."""
    return 1 if any(p.shape[0] == 1 for p in ports) else None


class IdentityModel:
    """The recogniser: aligned 112x112 faces in, unit 512-D identities out."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        self.session = _session(path, IDENTITY, threads)
        inputs, outputs = _ports(self.session.get_inputs()), _ports(self.session.get_outputs())
        found = f"it has inputs {_describe(inputs)} and outputs {_describe(outputs)}"
        if (
            len(inputs) != 1
            or len(outputs) != 1
            or inputs[0].kind != "tensor(float)"
            or not _fits(inputs[0].shape, (None, 3, IDENTITY_SIDE, IDENTITY_SIDE))
            or not _fits(outputs[0].shape, (None, EMBEDDING_SIZE))
        ):
            raise _wrong(path, IDENTITY, found)
        self.input, self.output = inputs[0].name, outputs[0].name
        self.batch = _batch(inputs + outputs)
        self.name = path.name

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """``(N, 512)`` unit vectors for ``(N, 112, 112, 3)`` uint8 RGB crops."""
        x = (crops.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
        step = self.batch or len(x)
        parts = [
            self.session.run([self.output], {self.input: x[i : i + step]})[0] for i in range(0, len(x), step)
        ]
        out = np.concatenate(parts).reshape(len(x), -1).astype(np.float32)
        if out.shape[1] != EMBEDDING_SIZE:
            raise ModelFileError(f"{self.name} ({IDENTITY.setting}) answered {out.shape}, not (N, 512).")
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class SwapperModel:
    """The swapper: aligned 128x128 target faces and an identity latent in, swapped faces out."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        self.session = _session(path, SWAPPER, threads)
        inputs, outputs = _ports(self.session.get_inputs()), _ports(self.session.get_outputs())
        found = f"it has inputs {_describe(inputs)} and outputs {_describe(outputs)}"
        by_name = {p.name: p for p in inputs}
        target, source = by_name.get("target"), by_name.get("source")
        if (
            len(inputs) != 2
            or len(outputs) != 1
            or target is None
            or source is None
            or target.kind != "tensor(float)"
            or source.kind != "tensor(float)"
            or not _fits(target.shape, (None, 3, SWAP_SIDE, SWAP_SIDE))
            or not _fits(source.shape, (None, EMBEDDING_SIZE))
            or not _fits(outputs[0].shape, (None, 3, SWAP_SIDE, SWAP_SIDE))
        ):
            raise _wrong(path, SWAPPER, found)
        self.output = outputs[0].name
        self.batch = _batch([target, outputs[0]])
        # A source fixed at one row is shared by the whole batch (the graph broadcasts it).
        self.shared_source = source.shape[0] == 1
        self.emap = _identity_matrix(path)
        self.name = path.name

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """The ``(512,)`` latent the swapper takes for an identity embedding."""
        unit = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        latent = unit.astype(np.float32) @ self.emap
        return (latent / max(float(np.linalg.norm(latent)), 1e-12)).astype(np.float32)

    def swap(self, crops: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """``(N, 128, 128, 3)`` float32 RGB (0..255) faces with the identity of ``latent`` put into
        the ``(N, 128, 128, 3)`` uint8 RGB ``crops``; at most ``batch`` crops per run."""
        x = np.ascontiguousarray(crops.astype(np.float32).transpose(0, 3, 1, 2) * (1.0 / 255.0))
        step = self.batch or len(x)
        parts = []
        for i in range(0, len(x), step):
            part = x[i : i + step]
            source = latent[None] if self.shared_source else np.repeat(latent[None], len(part), axis=0)
            out = self.session.run([self.output], {"target": part, "source": source})[0]
            if out.shape != part.shape:
                raise ModelFileError(
                    f"{self.name} ({SWAPPER.setting}) answered shape {out.shape} for a batch of "
                    f"{part.shape}: it is not {SWAPPER.expected}."
                )
            parts.append(out)
        out = np.concatenate(parts).transpose(0, 2, 3, 1)
        return np.clip(out * 255.0, 0.0, 255.0).astype(np.float32)


def _identity_matrix(path: Path) -> np.ndarray:
    """The swapper's 512x512 identity matrix, its graph's last initializer."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as error:
        raise AnimaticaError(
            "The faceswap-onnx engine needs onnxruntime and onnx: pip install 'animatica[onnx]'."
        ) from error
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        last = graph.initializer[-1] if len(graph.initializer) else None
        emap = None if last is None else numpy_helper.to_array(last)
    except Exception as error:  # protobuf's and onnx's own types
        raise _wrong(path, SWAPPER, f"its graph cannot be read ({type(error).__name__})") from None
    if emap is None or emap.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE):
        shape = "no initializers" if emap is None else f"a last initializer of shape {emap.shape}"
        raise _wrong(path, SWAPPER, f"it has {shape}")
    return emap.astype(np.float32)


@dataclass(frozen=True)
class SwapModels:
    swapper: SwapperModel
    identity: IdentityModel


def load_models(files: SwapModelFiles, threads: int = 0) -> SwapModels:
    """Both models, loaded once per process for the same files (a file replaced on disk is read
    again); `ModelFileError` naming the setting of whichever file is missing or wrong."""
    for role, value in ((SWAPPER, files.swapper), (IDENTITY, files.identity)):
        if not value.strip():
            raise ModelFileError(f"No {role.title} is configured: set {role.setting} to {role.expected}.")
    paths = (Path(files.swapper.strip()), Path(files.identity.strip()))
    stamps = tuple(_stamp(p) for p in paths)
    return _load(paths[0], stamps[0], paths[1], stamps[1], threads)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, 0)
    return (info.st_size, info.st_mtime_ns)


@cache
def _load(
    swapper: Path,
    _swapper_stamp: tuple[int, int],
    identity: Path,
    _identity_stamp: tuple[int, int],
    threads: int,
) -> SwapModels:  # the stamps are only part of the cache key
    return SwapModels(SwapperModel(swapper, threads), IdentityModel(identity, threads))


# --- paste-back --------------------------------------------------------------------------------


@cache
def crop_mask(side: int = SWAP_SIDE) -> np.ndarray:
    """``(side, side)`` float32 weights of a swapped crop: 0 on an eroded border, fading to 1.

    The blur's reach stops short of the crop's edge, so the weight there is exactly 0 and the
    pasted crop has no edge of its own in the frame."""
    border = max(2, round(MASK_ERODE * side))
    mask = np.zeros((side, side), np.float32)
    mask[border:-border, border:-border] = 1.0
    reach = border - 1
    mask = cv2.GaussianBlur(
        mask, (2 * reach + 1, 2 * reach + 1), MASK_BLUR * side, borderType=cv2.BORDER_CONSTANT
    )
    mask.setflags(write=False)
    return mask


def paste_back(frame: np.ndarray, swapped: np.ndarray, matrix: np.ndarray) -> bool:
    """Put the swapped crop (float RGB, 0..255) back where ``matrix`` (frame to crop) cut it from,
    changing ``frame`` (uint8 RGB) in place and only under the crop. False when none of it is in view."""
    side = swapped.shape[0]
    back = g.invert(matrix)
    corners = g.apply(back, np.array([[0, 0], [side, 0], [0, side], [side, side]], dtype=np.float64) - 0.5)
    h, w = frame.shape[:2]
    x0, y0 = (max(0, int(np.floor(v))) for v in corners.min(axis=0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 1), min(h, int(np.ceil(corners[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return False
    local = back.copy()
    local[:, 2] -= [x0, y0]
    size = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(swapped, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    weight = cv2.warpAffine(
        crop_mask(side), local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )[..., None]
    if not weight.any():
        return False
    original = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = np.clip(original + weight * (face - original) + 0.5, 0, 255).astype(np.uint8)
    return True
