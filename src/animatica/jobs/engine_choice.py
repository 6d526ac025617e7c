"""Which engine a service job runs on, and with which weights.

Users choose an engine by name; only the operator chooses weights (``ANIMATICA_FOMM_CHECKPOINT``
and ``ANIMATICA_FOMM_CONFIG``, ``ANIMATICA_LIVEPORTRAIT_CHECKPOINT``), so a job never carries a
path of anybody else's choosing. The
submission, the in-process executor and every Celery worker resolve the weights here from their
own settings, so they agree on what "fomm is available" means. ``auto`` becomes a concrete
engine when the job is submitted, so a job's record says what actually ran: the operator's
``ANIMATICA_ENGINE`` (fomm or liveportrait) when its weights are configured, else landmarks.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animatica.engines import ANIMATION_ENGINES, AUTO, choose_engine
from animatica.errors import AnimaticaError, CheckpointError
from animatica.settings import Settings

log = logging.getLogger("animatica.jobs")

# Shown to users, so it names no server path; the operator finds the detail in the log.
NO_WEIGHTS = "this server has no FOMM model weights installed, so the fomm engine cannot run"
TURNED_OFF = "the fomm engine is turned off on this server"
LP_NO_WEIGHTS = (
    "this server has no LivePortrait model weights installed, so the liveportrait engine cannot run"
)
LP_TURNED_OFF = "the liveportrait engine is turned off on this server"
VAEGAN_NO_WEIGHTS = "this server has no VAE+GAN model weights installed, so the vaegan engine cannot run"
VAEGAN_TURNED_OFF = "the vaegan engine is turned off on this server"
_reported: set[str] = set()


@dataclass(frozen=True)
class EngineWeights:
    """The weights of an engine that needs some: a FOMM checkpoint and config, or a LivePortrait folder."""

    checkpoint: Path
    config: str | None
    engine: str = "fomm"

    def load_options(self, settings: Settings) -> dict[str, Any]:
        """The options `engines.load_engine` takes to load these weights as the operator set them up
        (one set for job workers and live sessions, so both run the same model the same way)."""
        return {
            "checkpoint": str(self.checkpoint),
            "config": self.config,
            "device": settings.device,
            "precision": settings.precision,
            "checkpoints_dir": settings.checkpoints_dir,
        }


def fomm_weights(settings: Settings) -> EngineWeights:
    """The checkpoint service jobs use; CheckpointError with a user-safe message when none resolves."""
    from animatica.fomm.checkpoint import resolve_checkpoint

    wanted = settings.fomm_checkpoint.strip()
    if not wanted:
        raise CheckpointError(f"{TURNED_OFF}; choose the landmarks engine.")
    try:
        found = resolve_checkpoint(wanted, settings.checkpoints_dir)
    except CheckpointError as error:
        if str(error) not in _reported:  # every page view asks; tell the operator once
            _reported.add(str(error))
            log.warning("FOMM checkpoint for service jobs not found", extra={"reason": str(error)})
        raise CheckpointError(f"{NO_WEIGHTS}; choose the landmarks engine.") from error
    return EngineWeights(found.resolve(), settings.fomm_config or None)


def liveportrait_weights(settings: Settings) -> EngineWeights:
    """The LivePortrait weight folder service jobs use; CheckpointError with a user-safe message when
    it is turned off or incomplete (the operator finds which files are missing in the log)."""
    from animatica.liveportrait.layout import resolve_weights

    wanted = settings.liveportrait_checkpoint.strip()
    if not wanted:
        raise CheckpointError(f"{LP_TURNED_OFF}; choose the landmarks engine.")
    try:
        found = resolve_weights(wanted, settings.checkpoints_dir)
    except CheckpointError as error:
        if str(error) not in _reported:
            _reported.add(str(error))
            log.warning("LivePortrait weights for service jobs not found", extra={"reason": str(error)})
        raise CheckpointError(f"{LP_NO_WEIGHTS}; choose the landmarks engine.") from error
    return EngineWeights(found.resolve(), None, engine="liveportrait")


def vaegan_weights(settings: Settings) -> EngineWeights:
    """The VAE+GAN checkpoint service jobs use (the shipped ``vaegan-demo`` unless the operator names
    another); CheckpointError with a user-safe message when it is turned off or does not resolve."""
    from animatica.vaegan.checkpoint import resolve_checkpoint

    wanted = settings.vaegan_checkpoint.strip()
    if not wanted:
        raise CheckpointError(f"{VAEGAN_TURNED_OFF}; choose the landmarks engine.")
    try:
        found = resolve_checkpoint(wanted, settings.checkpoints_dir)
    except CheckpointError as error:
        if str(error) not in _reported:
            _reported.add(str(error))
            log.warning("VAE+GAN checkpoint for service jobs not found", extra={"reason": str(error)})
        raise CheckpointError(f"{VAEGAN_NO_WEIGHTS}; choose the landmarks engine.") from error
    return EngineWeights(found.resolve(), None, engine="vaegan")


def vaegan_problem(settings: Settings) -> str | None:
    """Why the vaegan engine cannot run here, or None when it can."""
    try:
        vaegan_weights(settings)
    except CheckpointError as error:
        return str(error)
    return None


def liveportrait_problem(settings: Settings) -> str | None:
    """Why the liveportrait engine cannot run here, or None when it can."""
    try:
        liveportrait_weights(settings)
    except CheckpointError as error:
        return str(error)
    return None


def fomm_problem(settings: Settings) -> str | None:
    """Why the fomm engine cannot run here, or None when it can."""
    try:
        fomm_weights(settings)
    except CheckpointError as error:
        return str(error)
    return None


def default_weights(settings: Settings) -> str | None:
    """The FOMM weights ``auto`` runs with here: the operator's, once the operator made fomm the default.

    The shipped ``demo`` FOMM model was trained on procedural shapes, not faces, so weights that
    merely resolve do not make ``auto`` pick FOMM: the operator opts in with
    ``ANIMATICA_ENGINE=fomm`` (and a face checkpoint such as vox-cpk in ``ANIMATICA_FOMM_CHECKPOINT``).
    """
    return settings.fomm_checkpoint.strip() or None if settings.engine == "fomm" else None


def _choose(settings: Settings, requested: str) -> str:
    """`choose_engine` with the operator's weights; ``auto`` is liveportrait when the operator made it
    the default (``ANIMATICA_ENGINE=liveportrait``) and did not turn it off."""
    if requested == AUTO and settings.engine == "liveportrait" and settings.liveportrait_checkpoint.strip():
        return "liveportrait"
    return choose_engine(requested, default_weights(settings))


def default_engine(settings: Settings) -> str:
    """The engine a job that names none (or names ``auto``) runs on, whether or not it can run now."""
    return _choose(settings, AUTO)


def concrete_engine(settings: Settings, requested: str) -> str:
    """The engine a request for ``requested`` runs on: `choose_engine` with the operator's weights.

    Raises CheckpointError when fomm or liveportrait is asked for (or is the operator's default)
    and cannot run; the caller refuses the job before taking its credit.
    """
    name = _choose(settings, requested)
    if name == "fomm":
        fomm_weights(settings)
    elif name == "liveportrait":
        liveportrait_weights(settings)
    elif name == "vaegan":
        vaegan_weights(settings)
    return name


def weights_for(settings: Settings, engine: str) -> EngineWeights | None:
    """The operator's weights for the engine ``engine`` runs on, None when it needs none."""
    name = concrete_engine(settings, engine)
    if name == "fomm":
        return fomm_weights(settings)
    if name == "liveportrait":
        return liveportrait_weights(settings)
    if name == "vaegan":
        return vaegan_weights(settings)
    return None


@dataclass(frozen=True)
class EngineStatus:
    id: str
    available: bool
    reason: str | None  # why it cannot run here, for people; None when it can


def engine_statuses(settings: Settings) -> list[EngineStatus]:
    """Every engine an animation job may name, with whether this server can run it right now."""
    problems = {
        "fomm": fomm_problem(settings),
        "liveportrait": liveportrait_problem(settings),
        "vaegan": vaegan_problem(settings),
    }
    return [EngineStatus(name, problems.get(name) is None, problems.get(name)) for name in ANIMATION_ENGINES]


def swap_engine(settings: Settings) -> str:
    """The engine a face swap runs on here: the operator's own ONNX models (``faceswap-onnx``) when
    both files are configured and present, else the weights-free ``faceswap``. Files configured but
    missing are the operator's to fix, told in the log; users still get a swap."""
    from animatica.engines import DEFAULT_SWAP_ENGINE, ONNX_SWAP_ENGINE
    from animatica.engines.faceswap_onnx import check_model_files

    files = settings.swap_model_files
    if not files.configured:
        return DEFAULT_SWAP_ENGINE
    try:
        check_model_files(files.swapper, files.identity)
    except AnimaticaError as error:
        if str(error) not in _reported:
            _reported.add(str(error))
            log.warning(
                "ONNX face-swap models not usable; swapping without them", extra={"reason": str(error)}
            )
        return DEFAULT_SWAP_ENGINE
    return ONNX_SWAP_ENGINE
