"""Which engine a service job runs on, and with which FOMM weights.

Users choose an engine by name; only the operator chooses weights (``ANIMATICA_FOMM_CHECKPOINT``
and ``ANIMATICA_FOMM_CONFIG``), so a job never carries a path of anybody else's choosing. The
submission, the in-process executor and every Celery worker resolve the weights here from their
own settings, so they agree on what "fomm is available" means. ``auto`` becomes a concrete
engine when the job is submitted, so a job's record says what actually ran.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animatica.errors import CheckpointError
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")

ENGINES = ("landmarks", "fomm")
REQUESTABLE = (*ENGINES, "auto")
# Shown to users, so it names no server path; the operator finds the detail in the log.
NO_WEIGHTS = "this server has no FOMM model weights installed, so the fomm engine cannot run"
TURNED_OFF = "the fomm engine is turned off on this server"
_reported: set[str] = set()


@dataclass(frozen=True)
class FommWeights:
    checkpoint: Path
    config: str | None


def _named(settings: Settings, name: str) -> Path | None:
    """A bare name in this service's own checkpoints folder (the resolver reads the global one)."""
    from animatica.fomm.checkpoint import SUFFIXES

    for suffix in SUFFIXES:
        candidate = settings.checkpoints_dir / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def fomm_weights(settings: Settings) -> FommWeights:
    """The checkpoint service jobs use; CheckpointError with a user-safe message when none resolves."""
    from animatica.fomm.checkpoint import resolve_checkpoint

    wanted = settings.fomm_checkpoint.strip()
    if not wanted:
        raise CheckpointError(f"{TURNED_OFF}; choose the landmarks engine.")
    path = Path(wanted).expanduser()
    found = _named(settings, wanted) if len(path.parts) == 1 and not path.is_file() else None
    if found is None:
        try:
            found = resolve_checkpoint(wanted)
        except CheckpointError as error:
            if str(error) not in _reported:  # every page view asks; tell the operator once
                _reported.add(str(error))
                log.warning("FOMM checkpoint for service jobs not found", extra={"reason": str(error)})
            raise CheckpointError(f"{NO_WEIGHTS}; choose the landmarks engine.") from error
    return FommWeights(found.resolve(), settings.fomm_config or None)


def fomm_problem(settings: Settings) -> str | None:
    """Why the fomm engine cannot run here, or None when it can."""
    try:
        fomm_weights(settings)
    except CheckpointError as error:
        return str(error)
    return None


def concrete_engine(settings: Settings, requested: str) -> str:
    """The engine a request for ``requested`` runs on: ``auto`` is the operator's default engine.

    The shipped ``demo`` FOMM model was trained on procedural shapes, not faces, so ``auto`` does
    not switch to FOMM just because weights resolve: the operator opts in with
    ``ANIMATICA_ENGINE=fomm`` (and a face checkpoint such as vox-cpk in ``ANIMATICA_FOMM_CHECKPOINT``).
    Raises CheckpointError when fomm is asked for and cannot run; the caller refuses the job
    before taking its credit. Unknown names are the caller's to refuse.
    """
    if requested == "auto":
        requested = settings.engine if settings.engine in ("fomm", "landmarks") else "landmarks"
    if requested == "fomm":
        fomm_weights(settings)
    return requested


def request_options(settings: Settings, engine: str) -> dict[str, Any]:
    """``engine``/``checkpoint``/``config`` for ``AnimationRequest``, from the operator's settings."""
    name = concrete_engine(settings, engine)
    if name != "fomm":
        return {"engine": name}
    weights = fomm_weights(settings)
    return {"engine": name, "checkpoint": str(weights.checkpoint), "config": weights.config}


@dataclass(frozen=True)
class EngineStatus:
    id: str
    available: bool
    reason: str | None  # why it cannot run here, for people; None when it can


def engine_statuses(settings: Settings) -> list[EngineStatus]:
    """Every engine a job may name, with whether this server can run it right now."""
    fomm = fomm_problem(settings)
    return [EngineStatus("landmarks", True, None), EngineStatus("fomm", fomm is None, fomm)]
