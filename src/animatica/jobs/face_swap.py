"""The face-swap job kind: a face photo (``source``) and a video (``driving``) in, the video with the
photo's face out, as an MP4.

A swap is a pipeline request like an animation's, on a swap engine (`animatica.swapping`), so
this kind only says how a job row becomes that request; running it whole, or cut into segments
on Celery workers (plan once, segments anywhere, join by packet copy with the video's sound), is
the animation kind's code (`animation.run`, `animation.Segmented`). The plan's length limit
travels as ``max_frames`` and is held by the pipeline's decoding, once for the whole job; the
plan's size limit was applied to both uploads when they were checked.

The row's options are the swap engine's options as `swapping.swap_options` made them at
submission (the reference person's identity already an embedding, so the job never carries that
photo), plus the two server fields every video job has (``max_frames``, ``frame_rate``) and
two of a swap's own, fixed by the server at submission: ``consent`` (who confirmed, and when,
that they may use both faces: kept for an operator's audit, never given to the engine) and
``visible_watermark`` (the operator's setting then, so that every segment of the job, on any
worker, stamps the same frames). The engine options are checked again here, in the worker's
process, so a bad row fails before a frame is read. A job costs one credit, like an animation.

Every result carries the tags that say it is synthetic (`swapping.SWAP_METADATA`): the whole
run's writer sets them, and the join of a segmented run sets them on the joined video.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from animatica.engines import ONNX_SWAP_ENGINE, choose_engine
from animatica.jobs.animation import Segmented, run, size
from animatica.jobs.kinds import Execution, JobKind, register
from animatica.jobs.options import SERVER_FIELDS
from animatica.media.limits import MediaLimits
from animatica.settings import Settings
from animatica.swapping import SWAP_METADATA, watermarks

NAME = "face_swap"
COST = 1  # credits per job, whatever the video's length: the same as an animation
# A swap row's fields that are the server's record, not the engine's options.
RECORD_FIELDS = ("consent", "visible_watermark")


def execution(
    face: Path, video: Path, output: Path, engine: str, options: Mapping[str, Any] | None = None
) -> Execution:
    """A swap of the face in ``face`` into ``video``, written to ``output``."""
    return Execution(NAME, {"source": face, "driving": video}, output, engine, dict(options or {}))


def engine_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The swap engine's options in a job row's options (all but the server's fields)."""
    return {
        key: value for key, value in options.items() if key not in SERVER_FIELDS and key not in RECORD_FIELDS
    }


def request_fields(settings: Settings, execution: Execution, **extra: Any) -> dict[str, Any]:
    """``AnimationRequest`` keyword arguments for a swap job, as plain data that crosses processes.

    ``extra`` overrides pipeline arguments (a segment's frame range).
    """
    from animatica.engines import load_engine

    engine = choose_engine(execution.engine or "auto", None, kind="swap")
    options = engine_options(execution.options)
    if engine == ONNX_SWAP_ENGINE:  # the model files are this worker's own, never the row's
        options.update(settings.swap_model_files.engine_options())
    load_engine(engine, **options)  # refuses a bad option here rather than on the first frame
    max_frames = execution.options.get("max_frames")
    fields: dict[str, Any] = {
        "source": execution.inputs["source"],
        "driving": execution.inputs["driving"],
        "output": execution.output,
        "engine": engine,
        "device": settings.device,
        "precision": settings.precision,
        "batch_size": settings.batch_size,
        "engine_options": options,
        "max_frames": int(max_frames) if max_frames else None,
        "limits": MediaLimits.from_settings(settings),
        **watermarks(bool(execution.options.get("visible_watermark", True))),
    }
    return {**fields, **extra}


def warm(settings: Settings) -> None:
    """Load the face models the first swap would, outside any job's time limit (and the operator's
    ONNX swap models when swaps run on them: reading one takes seconds)."""
    from animatica.engines import DEFAULT_SWAP_ENGINE
    from animatica.jobs.engine_choice import swap_engine
    from animatica.pipeline import preload

    preload(DEFAULT_SWAP_ENGINE)
    if swap_engine(settings) == ONNX_SWAP_ENGINE:
        preload(ONNX_SWAP_ENGINE, **settings.swap_model_files.engine_options())


FACE_SWAP = register(
    JobKind(
        name=NAME,
        inputs=("source", "driving"),
        result="result.mp4",
        run=run,
        request=request_fields,
        size=size,
        segmented=Segmented(request_fields, metadata=SWAP_METADATA),
        warm=warm,
        cost=COST,
    )
)
