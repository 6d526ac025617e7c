"""Kinds of jobs: what a job does, declared once and run by every worker the same way.

A kind says five things, and nothing about queues or processes:

* its ``name``, stored on the job (``Job.kind``);
* its ``inputs``: which of the job's stored files it reads (``state.INPUT_SLOTS``: a ``source``
  and a ``driving`` file, each with the name the user uploaded it under);
* how it runs: ``request`` turns a job into plain data (in the worker's own process, so a bad
  option fails before anything heavy starts), ``run`` does the work on that data, reporting
  progress and answering cancellation; optionally ``segmented``, a plan → segments → join
  split that Celery workers run in parallel;
* its ``result``: the file name the result is stored under (``jobs/<id>/<result>``);
* its ``cost``: the credits a job of it reserves when queued (consumed when it succeeds, returned
  otherwise); 0 for work already paid for another way, which then touches no credit at all.

Everything else (taking the job, fetching its inputs, watching it, storing the result, ending it
and settling its credit) is `animatica.jobs.lifecycle`, written once for every kind.

Where a kind is run, its module must have been imported, because the registry lives in memory.
The animation, portrait-edit, live-recording, face-swap and image kinds are built in. Any other is
listed, by module, in the ``job_kinds`` setting (``ANIMATICA_JOB_KINDS``, comma-separated); every
process that runs jobs imports those modules when it starts (the service's runner, each animation
child, each Celery worker), and a module registers its kinds with `register` when imported.
"""

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from animatica.errors import AnimaticaError
from animatica.jobs.segments import Segment
from animatica.settings import Settings

BUILT_IN = (
    "animatica.jobs.animation",
    "animatica.jobs.portrait_edit",
    "animatica.jobs.live_recording",
    "animatica.jobs.face_swap",
    "animatica.jobs.image",
)
log = logging.getLogger("animatica.jobs")

OnProgress = Callable[[Any], None]  # takes objects with stage, done, total, eta_seconds (all optional)
ShouldCancel = Callable[[], bool]


@dataclass(frozen=True)
class Execution:
    """One job, ready to run: its kind, its input files on local disk, where the result goes."""

    kind: str
    inputs: Mapping[str, Path]  # slot -> local file
    output: Path
    engine: str = ""
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    """What a finished job records besides its file; a kind's ``run`` may return any object with
    these attributes (the pipeline's ``AnimationResult`` has them)."""

    frames: int = 0
    fps: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SegmentPlan:
    """How a segmented job is cut, as its plan step found out (the fields of the plan row)."""

    parts: list[Segment]
    frame_rate: Fraction
    has_audio: bool = False
    total_frames: int | None = None
    best_frame: int | None = None
    # State the plan step computed once for every segment (stored at ``jobs/<id>/prepared.bin``
    # and handed to each segment as a file); None when the segments need none.
    prepared: bytes | None = None


class SegmentedRun(Protocol):
    """The parallel form of a kind: plan once, run each segment anywhere, join in order."""

    def plan(
        self, settings: Settings, execution: Execution, on_progress: OnProgress, should_cancel: ShouldCancel
    ) -> SegmentPlan: ...

    def segment(
        self,
        settings: Settings,
        execution: Execution,
        plan: Any,  # distributed.plans.Plan
        part: Segment,
        prepared: Path | None,
        on_progress: OnProgress,
        should_cancel: ShouldCancel,
    ) -> int:
        """Write the segment's file to ``execution.output``; returns how many frames it holds."""
        ...

    def join(
        self,
        settings: Settings,
        parts: list[Path],
        counts: list[int | None],
        plan: Any,  # distributed.plans.Plan
        fetch: Callable[[str], Path],
        output: Path,
    ) -> Any:
        """Write the result from the segment files in order; returns a result like ``run``'s."""
        ...


def plain_request(settings: Settings, execution: Execution) -> dict[str, Any]:
    """The default request: the execution itself, as data that crosses a process boundary."""
    return {
        "inputs": {slot: str(path) for slot, path in execution.inputs.items()},
        "output": str(execution.output),
        "engine": execution.engine,
        "options": dict(execution.options),
    }


def no_size(_options: Mapping[str, Any]) -> int | None:
    return None


@dataclass(frozen=True)
class JobKind:
    name: str
    inputs: tuple[str, ...]  # slots of state.INPUT_SLOTS the kind reads
    result: str  # file name of the stored result, e.g. "result.mp4"
    # (request data, on_progress, should_cancel) -> a result; ``frames``, ``fps`` and ``notes``
    # attributes, when it has them, are recorded on the job. Must be a module-level function.
    run: Callable[[dict[str, Any], OnProgress, ShouldCancel], Any]
    request: Callable[[Settings, Execution], dict[str, Any]] = plain_request
    # The job's size in the units its progress counts (driving frames for an animation), known
    # before it runs; its time limit follows from it (`bounds.JobBounds.time_limit`).
    size: Callable[[Mapping[str, Any]], int | None] = no_size
    segmented: SegmentedRun | None = None
    # Loads what the kind's first job would (imports, model files) when a worker process starts,
    # so that cost is not paid inside a job's time limit, nor counted in one segment's share.
    warm: Callable[[Settings], None] | None = None
    # Credits a job of this kind reserves when it is queued (`state.create`'s ``cost``).
    cost: int = 1
    # Slots the kind reads when the job has them and does without otherwise (a picture made from
    # a prompt alone has no input file; one painted over a photo has it).
    optional_inputs: tuple[str, ...] = ()


_registry: dict[str, JobKind] = {}
_lock = threading.Lock()


def register(kind: JobKind) -> JobKind:
    """Make ``kind`` known in this process; registering the same name again replaces it."""
    unknown = (set(kind.inputs) | set(kind.optional_inputs)) - {"source", "driving"}
    if unknown or not (kind.inputs or kind.optional_inputs):
        raise ValueError(f"job kind {kind.name!r} must read 'source' and/or 'driving', not {unknown}")
    with _lock:
        _registry[kind.name] = kind
    return kind


def import_modules(modules: str | Iterable[str]) -> None:
    """Import the modules that declare extra kinds (``job_kinds``: names separated by commas)."""
    names = modules.split(",") if isinstance(modules, str) else list(modules)
    for name in (name.strip() for name in names):
        if name:
            importlib.import_module(name)


def get(name: str) -> JobKind:
    """The kind called ``name``; AnimaticaError when this process does not know it."""
    import_modules(BUILT_IN)  # imported once per process; later calls find them in sys.modules
    with _lock:
        kind = _registry.get(name)
    if kind is None:
        raise AnimaticaError(
            f"this server cannot run jobs of kind {name!r}; list its module in ANIMATICA_JOB_KINDS"
        )
    return kind


def warm_all(settings: Settings) -> None:
    """Warm every kind this process knows; a kind that cannot warm loads on its first job instead."""
    import_modules(BUILT_IN)
    with _lock:
        known = list(_registry.values())
    for kind in known:
        if kind.warm is None:
            continue
        try:
            kind.warm(settings)
        except Exception:
            log.exception("could not warm a job kind; its first job loads it", extra={"kind": kind.name})


def result_key(job_id: str, kind: JobKind) -> str:
    """Where a job's result is stored: one key per job, so a repeated run overwrites it."""
    return f"jobs/{job_id}/{kind.result}"


def prepared_key(job_id: str) -> str:
    """Where a segmented job's prepared state is stored, once for all its segments."""
    return f"jobs/{job_id}/prepared.bin"
