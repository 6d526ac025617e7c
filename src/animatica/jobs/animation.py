"""The animation job kind: a source picture and a driving video in, an MP4 out.

Run whole, a job is one pipeline run. Segmented (on Celery workers), it is:

* plan: probe both inputs, do the once-per-job work (``pipeline.prepare``: the source's face,
  the initial driving frame and the best-frame search, the face-crop boxes, the engine's prepared
  state; the searches read the whole video, which no segment should repeat), keep it as one blob
  for every segment, and cut the video into segments by frame;
* segment: animate driving frames ``[start, stop)`` from that blob (relative motion still measured
  from the whole video's initial frame) and encode them, as the single-process run encodes its
  frames, into a segment file that starts with a keyframe;
* join: copy the segments' encoded frames in order into one MP4, with the driving video's sound
  (`join`): no frame is decoded or encoded again, so the encode runs in parallel with the segments.

A segmented result therefore looks like, but is not bit for bit, the single-process result: each
segment's encoder starts afresh at its seam (`segment_file`). The in-process runner never segments.

Every run, whole or segment, builds its pipeline request with `request_fields`, from the job's
options (`options.JobOptions`) and the worker's own settings: the FOMM weights, device, precision
and media limits are the operator's (``engine_choice``), never the job's.
"""

from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError
from animatica.jobs.engine_choice import weights_for
from animatica.jobs.kinds import (
    Execution,
    JobKind,
    OnProgress,
    Result,
    SegmentPlan,
    ShouldCancel,
    register,
)
from animatica.jobs.options import JobOptions
from animatica.jobs.segments import Segment, plan_segments
from animatica.media.limits import MediaLimits
from animatica.settings import Settings

NAME = "animation"


def execution(
    source: Path, driving: Path, output: Path, engine: str, options: Mapping[str, Any] | None = None
) -> Execution:
    """An animation of ``source`` by ``driving`` into ``output``."""
    return Execution(NAME, {"source": source, "driving": driving}, output, engine, dict(options or {}))


def request_fields(settings: Settings, execution: Execution, **extra: Any) -> dict[str, Any]:
    """``AnimationRequest`` keyword arguments for a job, as plain data that crosses processes.

    The engine resolves here, before torch is imported, so a bad engine choice fails fast.
    ``extra`` overrides pipeline arguments (a segment's frame range).
    """
    options = JobOptions.from_row(execution.engine, execution.options)
    fields = options.request_fields(
        execution.inputs["source"],
        execution.inputs["driving"],
        execution.output,
        weights=weights_for(settings, options.engine),
        device=settings.device,
        precision=settings.precision,
        batch_size=settings.batch_size,
    )
    return {**fields, "limits": MediaLimits.from_settings(settings), **extra}


def run(fields: dict[str, Any], on_progress: OnProgress, should_cancel: ShouldCancel) -> Any:
    """One whole pipeline run."""
    from animatica.pipeline import AnimationRequest, animate

    return animate(AnimationRequest(**fields), on_progress=on_progress, should_cancel=should_cancel)


def size(options: Mapping[str, Any]) -> int | None:
    """Until the pipeline reports the driving video's length, the plan's limit for it bounds it."""
    max_frames = options.get("max_frames")
    return int(max_frames) if max_frames else None


def warm(settings: Settings) -> None:
    """Load every animation engine this worker can run, with the options its jobs will use: the face
    models' seconds on the first job, or a FOMM checkpoint's, would otherwise land in one segment.
    (The swap engines are the face-swap kind's to warm.)"""
    from animatica.engines import ANIMATION_ENGINES
    from animatica.pipeline import preload

    for name in ANIMATION_ENGINES:
        try:
            weights = weights_for(settings, name)
        except AnimaticaError:
            continue  # an engine this worker cannot run is not loaded
        options = weights.load_options(settings) if weights is not None else {}
        preload(name, **options)


RequestFields = Callable[..., dict[str, Any]]  # (settings, execution, **extra) -> AnimationRequest fields


class Segmented:
    """The animation cut into segments of ``segment_seconds`` of driving video.

    Any kind whose request is an ``AnimationRequest`` (a face swap too) segments the same way;
    ``request`` is how that kind builds it (`request_fields` for an animation). ``metadata`` are
    the joined video's container tags: the segments' own files are intermediate, so the tags a
    whole run's writer sets (``AnimationRequest.metadata``) go on here.
    """

    def __init__(
        self, request: RequestFields = request_fields, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.request = request
        self.metadata = dict(metadata or {})

    def plan(
        self, settings: Settings, execution: Execution, on_progress: OnProgress, should_cancel: ShouldCancel
    ) -> SegmentPlan:
        from animatica.media.probe import probe, require_video
        from animatica.pipeline import AnimationRequest, prepare

        fields = self.request(settings, execution, output=execution.output / "unused")
        info = require_video(probe(execution.inputs["driving"], fields["limits"]))
        prepared = prepare(AnimationRequest(**fields), on_progress=on_progress)
        rate = info.frame_rate or Fraction(25)
        count = info.frame_count or 0
        parts = plan_segments(count, rate, settings.segment_seconds, exact=info.frame_count_exact)
        return SegmentPlan(
            parts=parts,
            frame_rate=rate,
            has_audio=info.has_audio,
            total_frames=count if info.frame_count_exact else None,
            best_frame=prepared.initial_frame,
            prepared=prepared.to_bytes(),
        )

    def segment(
        self,
        settings: Settings,
        execution: Execution,
        plan: Any,
        part: Segment,
        prepared: Path | None,
        on_progress: OnProgress,
        should_cancel: ShouldCancel,
    ) -> int:
        from animatica.jobs.segment_file import write_segment
        from animatica.pipeline import AnimationRequest, animate_frames

        extra: dict[str, Any] = {"start": part.start, "stop": part.stop, "keep_audio": False}
        if prepared is None and plan.best_frame is not None:  # a plan made without a prepared blob
            extra.update(best_frame=plan.best_frame, find_best_frame=False)
        fields = self.request(settings, execution, output=execution.output.parent / "unused", **extra)
        frames = animate_frames(
            AnimationRequest(**fields),
            on_progress=on_progress,
            should_cancel=should_cancel,
            prepared=prepared.read_bytes() if prepared is not None else None,
        )
        return write_segment(frames, execution.output, plan.frame_rate)

    def join(
        self,
        settings: Settings,
        parts: list[Path],
        counts: list[int | None],
        plan: Any,
        fetch: Callable[[str], Path],
        output: Path,
    ) -> Result:
        from animatica.jobs.join import join_segments

        audio = fetch("driving") if plan.has_audio else None
        frames = join_segments(parts, output, plan.frame_rate, audio, counts, self.metadata)
        if plan.total_frames is not None and frames != plan.total_frames:
            raise AnimaticaError(
                f"the joined video has {frames} frames, not {plan.total_frames}; your credit was returned."
            )
        return Result(frames, float(plan.frame_rate))


ANIMATION = register(
    JobKind(
        name=NAME,
        inputs=("source", "driving"),
        result="result.mp4",
        run=run,
        request=request_fields,
        size=size,
        segmented=Segmented(),
        warm=warm,
    )
)
