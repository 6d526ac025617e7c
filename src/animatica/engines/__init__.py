"""Animation engines behind one protocol (see ``base.py``), by name.

``ENGINES`` is the one list of engines: every name a job, the command line or the service may
ask for maps to the loader of that engine. Loaders import their engine on first use, so one
engine's packages (torch for fomm and liveportrait, the face detectors for landmarks) never load
the other's. The liveportrait engine takes a weight folder (``--checkpoint DIR``, or the folder
``liveportrait`` under the checkpoints folder when none is given); the vaegan engine a VAE+GAN
checkpoint (a path or a name, the shipped ``vaegan-demo`` when none is given).

Every engine has a ``kind``, what it is for: ``animation`` engines move a photo with a video's
motion, ``swap`` engines put a photo's face into a video. Both run behind the same protocol and
pipeline, but a request of one kind never lands on an engine of the other: the names offered
for animations (``REQUESTABLE``, the service's engine list, the Create page, ``animatica
animate``) are the animation engines, and ``choose_engine(..., kind=...)`` refuses the other kind
by name.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from animatica.engines.base import Engine
from animatica.errors import AnimaticaError

AUTO = "auto"


def _load_landmarks(**options: Any) -> Engine:
    from animatica.engines.landmarks import LandmarksEngine

    options.pop("checkpoint", None)  # the landmarks engine has no weights to load
    options.pop("config", None)
    return LandmarksEngine.load(**options)


def _load_fomm(**options: Any) -> Engine:
    if not options.get("checkpoint"):
        raise AnimaticaError(
            "the fomm engine needs --checkpoint: a path to a FOMM checkpoint (e.g. vox-cpk.pth.tar) "
            "or the name of a shipped one"
        )
    from animatica.engines.fomm import FommEngine

    return FommEngine.load(**options)


def _load_liveportrait(**options: Any) -> Engine:
    from animatica.engines.liveportrait import LivePortraitEngine

    options.pop("config", None)  # the weight folder is the whole model: no config to choose
    return LivePortraitEngine.load(**options)


def _load_vaegan(**options: Any) -> Engine:
    from animatica.engines.vaegan import VaeganEngine

    options.pop("config", None)  # the checkpoint stores its config
    return VaeganEngine.load(**options)


def _load_faceswap(**options: Any) -> Engine:
    from animatica.engines.faceswap import FaceSwapEngine

    options.pop("checkpoint", None)  # no weights
    options.pop("config", None)
    return FaceSwapEngine.load(**options)


def _load_faceswap_onnx(**options: Any) -> Engine:
    from animatica.engines.faceswap_onnx import OnnxSwapEngine, model_files_message

    options.pop("checkpoint", None)  # the two model files come as swap_model and identity_model
    options.pop("config", None)
    if not (
        str(options.get("swap_model") or "").strip() and str(options.get("identity_model") or "").strip()
    ):
        raise AnimaticaError(model_files_message())
    return OnnxSwapEngine.load(**options)


Kind = Literal["animation", "swap"]


@dataclass(frozen=True)
class EngineLoader:
    """How to load an engine (call it with the engine's options) and what kind of engine it is."""

    load: Callable[..., Engine]
    kind: Kind = "animation"

    def __call__(self, **options: Any) -> Engine:
        return self.load(**options)


ENGINES: dict[str, EngineLoader] = {
    "landmarks": EngineLoader(_load_landmarks),
    "fomm": EngineLoader(_load_fomm),
    "liveportrait": EngineLoader(_load_liveportrait),
    "vaegan": EngineLoader(_load_vaegan),
    "faceswap": EngineLoader(_load_faceswap, kind="swap"),
    # The operator's own ONNX models (settings swap_model and swap_identity_model).
    "faceswap-onnx": EngineLoader(_load_faceswap_onnx, kind="swap"),
}


def engine_names(kind: Kind) -> tuple[str, ...]:
    """The engines of one kind, in the order of ``ENGINES``."""
    return tuple(name for name, loader in ENGINES.items() if loader.kind == kind)


ANIMATION_ENGINES: tuple[str, ...] = engine_names("animation")
SWAP_ENGINES: tuple[str, ...] = engine_names("swap")
DEFAULT_SWAP_ENGINE = "faceswap"
ONNX_SWAP_ENGINE = "faceswap-onnx"
# The names an animation request may give.
REQUESTABLE: tuple[str, ...] = (*ANIMATION_ENGINES, AUTO)
# The names a face-swap request may give (``auto`` is the default swap engine).
SWAP_REQUESTABLE: tuple[str, ...] = (*SWAP_ENGINES, AUTO)


def offered_swap_engines(onnx_models: bool) -> tuple[str, ...]:
    """The swap engines to offer where the ONNX swap models are (or are not) configured: the
    ``faceswap-onnx`` engine cannot run without them, so it is not offered there."""
    return tuple(name for name in SWAP_ENGINES if onnx_models or name != ONNX_SWAP_ENGINE)


def unknown_engine_message(name: str, kind: Kind = "animation") -> str:
    names = REQUESTABLE if kind == "animation" else SWAP_REQUESTABLE
    return f"Unknown engine {name!r}; use one of {', '.join(names)}."


def choose_engine(requested: str, checkpoint: str | None, *, kind: Kind | None = None) -> str:
    """The engine a request for ``requested`` runs on, given the FOMM weights chosen for it.

    ``auto`` is the fomm engine when FOMM weights are given and the landmarks engine, which needs
    none, otherwise: someone who passes ``--checkpoint`` on the command line means those weights
    to be used. The service asks the same question with the weights its operator made the
    default (``jobs.engine_choice.concrete_engine``), so ``auto`` means one thing everywhere.

    ``kind`` is the kind of request (see the module's docstring): an engine of another kind is
    refused, and for a swap ``auto`` is the ``faceswap-onnx`` engine when ``checkpoint`` is given (the
    caller passes one when the operator configured both ONNX swap models: someone who installed
    their own models means them to be used) and the default swap engine otherwise. Without it any
    engine named is taken (the pipeline runs whatever its caller chose).
    """
    if requested == AUTO:
        if kind == "swap":  # ``checkpoint``: the operator's ONNX swap model, when both files are set
            return ONNX_SWAP_ENGINE if checkpoint else DEFAULT_SWAP_ENGINE
        return "fomm" if checkpoint else "landmarks"
    loader = ENGINES.get(requested)
    if loader is None:
        raise AnimaticaError(unknown_engine_message(requested, kind or "animation"))
    if kind is not None and loader.kind != kind:
        if loader.kind == "swap":
            raise AnimaticaError(
                f"The {requested} engine swaps faces, it does not animate a photo: use `animatica swap`, "
                f"or one of {', '.join(REQUESTABLE)} to animate."
            )
        raise AnimaticaError(
            f"The {requested} engine animates a photo, it does not swap faces: "
            f"use one of {', '.join(SWAP_REQUESTABLE)} for a face swap."
        )
    return requested


def load_engine(name: str, **options: Any) -> Engine:
    """Load the engine called ``name`` (a concrete name: resolve ``auto`` with `choose_engine` first)."""
    loader = ENGINES.get(name)
    if loader is None:  # a caller's mistake: names from users go through choose_engine first
        raise ValueError(f"no engine named {name!r}; load one of {', '.join(ENGINES)}")
    return loader(**options)
