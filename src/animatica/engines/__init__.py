"""Animation engines behind one protocol (see ``base.py``), by name.

``ENGINES`` is the one list of engines: every name a job, the command line or the service may
ask for maps to the loader of that engine. Loaders import their engine on first use, so one
engine's packages (torch for fomm and liveportrait, the face detectors for landmarks) never load
the other's. The liveportrait engine takes a weight folder (``--checkpoint DIR``, or the folder
``liveportrait`` under the checkpoints folder when none is given).
"""

from collections.abc import Callable
from typing import Any

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


ENGINES: dict[str, Callable[..., Engine]] = {
    "landmarks": _load_landmarks,
    "fomm": _load_fomm,
    "liveportrait": _load_liveportrait,
}
REQUESTABLE: tuple[str, ...] = (*ENGINES, AUTO)


def unknown_engine_message(name: str) -> str:
    return f"Unknown engine {name!r}; use one of {', '.join(REQUESTABLE)}."


def choose_engine(requested: str, checkpoint: str | None) -> str:
    """The engine a request for ``requested`` runs on, given the FOMM weights chosen for it.

    ``auto`` is the fomm engine when FOMM weights are given and the landmarks engine, which needs
    none, otherwise: someone who passes ``--checkpoint`` on the command line means those weights
    to be used. The service asks the same question with the weights its operator made the
    default (``jobs.engine_choice.concrete_engine``), so ``auto`` means one thing everywhere.
    """
    if requested == AUTO:
        return "fomm" if checkpoint else "landmarks"
    if requested not in ENGINES:
        raise AnimaticaError(unknown_engine_message(requested))
    return requested


def load_engine(name: str, **options: Any) -> Engine:
    """Load the engine called ``name`` (a concrete name: resolve ``auto`` with `choose_engine` first)."""
    loader = ENGINES.get(name)
    if loader is None:  # a caller's mistake: names from users go through choose_engine first
        raise ValueError(f"no engine named {name!r}; load one of {', '.join(ENGINES)}")
    return loader(**options)
