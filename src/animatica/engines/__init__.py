"""Animation engines behind one protocol (see ``base.py``), chosen by name."""

from typing import Any

from animatica.engines.base import Engine
from animatica.errors import AnimaticaError

ENGINES = ("fomm", "landmarks")


def choose_engine(engine: str, checkpoint: str | None) -> str:
    """``auto`` means the FOMM engine when a checkpoint is given, else the no-weights face engine."""
    if engine == "auto":
        return "fomm" if checkpoint else "landmarks"
    if engine not in ENGINES:
        raise AnimaticaError(f"unknown engine '{engine}'; choose one of: auto, {', '.join(ENGINES)}")
    return engine


def load_engine(engine: str, **options: Any) -> Engine:
    """Load an engine by name; imports are deferred so that one engine's packages never load the other's."""
    name = choose_engine(engine, options.get("checkpoint"))
    if name == "fomm":
        if not options.get("checkpoint"):
            raise AnimaticaError(
                "the fomm engine needs --checkpoint: a path to a FOMM checkpoint (e.g. vox-cpk.pth.tar) "
                "or the name of a shipped one"
            )
        from animatica.engines.fomm import FommEngine

        return FommEngine.load(**options)
    from animatica.engines.landmarks import LandmarksEngine

    options.pop("checkpoint", None)
    options.pop("config", None)
    return LandmarksEngine.load(**options)
