"""The portrait-edit job kind: one picture in, the same picture with its head turned and its eyes
or lips opened or closed out, as a PNG.

An edit is one pass of the warping module and the decoder (about 1.2 TFLOP for the 512x512
face), seconds on a CPU rather than milliseconds, so it runs as a job like an animation: it is
queued at the owner's plan priority, takes a credit, reports progress, lands in the History and
runs on both runners. What makes repeated edits of one photo cheap lives in the process that runs
them: the networks stay loaded, and the last few photos' prepared state (crop, appearance volume,
keypoints) is kept, keyed by the picture's bytes, so the next edit of the same photo only runs the
motion maths, the warping module and the decoder.

Only the operator chooses the weights (``liveportrait_checkpoint``); a job carries numbers only.
"""

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError, CheckpointError
from animatica.jobs.kinds import Execution, JobKind, OnProgress, Result, ShouldCancel, register
from animatica.jobs.messages import CANCELED
from animatica.liveportrait.edit_options import PortraitEdit
from animatica.media.limits import MediaLimits
from animatica.settings import Settings

NAME = "portrait_edit"
ENGINE = "liveportrait"
KEEP_SOURCES = 2  # prepared photos kept per process (each holds its 8 MB volume and the photo)

NO_WEIGHTS = "this server has no LivePortrait weights installed, so portraits cannot be edited"
TURNED_OFF = "portrait editing is turned off on this server"


@dataclass(frozen=True)
class EditStep:
    """A progress report of an edit (the attributes the job core reads)."""

    stage: str
    done: int = 0
    total: int | None = 1
    eta_seconds: float | None = None


def weights(settings: Settings) -> Path:
    """The operator's LivePortrait weights folder; CheckpointError with a user-safe message when
    none is configured or it does not hold the files."""
    if not settings.liveportrait_checkpoint.strip():
        raise CheckpointError(f"{TURNED_OFF}.")
    from animatica.jobs.engine_choice import liveportrait_weights

    try:  # the engine's own look-up (it logs what is missing for the operator)
        return liveportrait_weights(settings).checkpoint
    except CheckpointError as error:
        raise CheckpointError(f"{NO_WEIGHTS}.") from error


def problem(settings: Settings) -> str | None:
    """Why this server cannot edit portraits, or None when it can."""
    try:
        weights(settings)
    except CheckpointError as error:
        return str(error)
    return None


def execution(source: Path, output: Path, options: Mapping[str, Any]) -> Execution:
    """An edit of ``source`` into ``output`` (a PNG) with the job options ``options``."""
    return Execution(NAME, {"source": source}, output, ENGINE, dict(options))


def request(settings: Settings, execution: Execution) -> dict[str, Any]:
    """The edit as plain data: the options checked again here, the weights and limits the worker's."""
    edit = PortraitEdit.from_row(execution.options)
    return {
        "source": str(execution.inputs["source"]),
        "output": str(execution.output),
        "checkpoint": str(weights(settings)),
        "device": settings.device,
        "precision": settings.precision,
        "edit": edit.to_row(),
        "crop": bool(execution.options.get("crop", True)),
        "limits": MediaLimits.from_settings(settings),
    }


# --- what stays loaded in the process that runs edits ------------------------------------------

_lock = threading.Lock()
_editors: "OrderedDict[tuple[str, bool], Any]" = OrderedDict()


def loaded_networks(checkpoint: str, device: str, precision: str) -> Any:
    """The networks (``engines.liveportrait.LoadedNetworks``), shared with the liveportrait engine:
    loaded once per process."""
    from animatica.liveportrait.editing import load_for_editing

    return load_for_editing(checkpoint, device=device, precision=precision)


def editor_for(loaded: Any, source: Path, crop: bool, limits: MediaLimits) -> Any:
    """The prepared editor of this picture: kept from an earlier edit of the same bytes with the same
    networks, or made now."""
    from animatica.liveportrait.editing import PortraitEditor
    from animatica.media.reader import read_image

    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    key = (digest, crop)
    with _lock:
        editor = _editors.get(key)
        if editor is not None and editor.networks is loaded.networks and editor.dtype == loaded.dtype:
            _editors.move_to_end(key)
            return editor
    editor = PortraitEditor(loaded.networks, read_image(source, limits), crop=crop, dtype=loaded.dtype)
    with _lock:
        _editors[key] = editor
        while len(_editors) > KEEP_SOURCES:
            _editors.popitem(last=False)
    return editor


def run(fields: dict[str, Any], on_progress: OnProgress, should_cancel: ShouldCancel) -> Result:
    """Load (once), prepare the photo (once per photo), edit it, write the PNG."""
    from animatica.liveportrait.editing import write_png

    def check() -> None:
        if should_cancel():
            raise AnimaticaError(CANCELED)

    on_progress(EditStep("load"))
    loaded = loaded_networks(fields["checkpoint"], fields["device"], fields["precision"])
    check()
    on_progress(EditStep("prepare"))
    editor = editor_for(loaded, Path(fields["source"]), fields["crop"], fields["limits"])
    check()
    on_progress(EditStep("edit"))
    picture = editor.edit(PortraitEdit.from_row(fields["edit"]))
    check()
    write_png(picture, Path(fields["output"]))
    on_progress(EditStep("done", done=1))
    return Result(frames=1, notes=list(editor.notes))


def size(_options: Mapping[str, Any]) -> int | None:
    """One picture: its time limit is the fixed part of an animation's plus one frame's."""
    return 1


def warm(settings: Settings) -> None:
    """Load the networks when a worker starts, where the operator configured them."""
    try:
        checkpoint = weights(settings)
    except CheckpointError:
        return  # editing is off here: nothing to load
    loaded_networks(str(checkpoint), settings.device, settings.precision)


PORTRAIT_EDIT = register(
    JobKind(
        name=NAME,
        inputs=("source",),
        result="result.png",
        run=run,
        request=request,
        size=size,
        warm=warm,
    )
)
