"""How a claimed job becomes a video: the bridge from the runner to ``animatica.pipeline``.

The FOMM weights come from the operator's settings (``engine_choice``), never from the job.

The runner depends only on the `Executor` call shape, so the job machinery can be exercised
without animating anything; the real executor imports the pipeline (and torch) lazily, on
the first job, not when the web app starts.
"""

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from animatica.jobs.engine_choice import request_options
from animatica.settings import Settings

# Job options the API accepts and passes to the pipeline unchanged. ``max_frames`` is set by the
# upload check, never by the user: the plan's length limit in frames, enforced while decoding.
PIPELINE_OPTIONS = (
    "relative",
    "adapt_scale",
    "crop_face",
    "find_best_frame",
    "best_frame",
    "fit",
    "max_frames",
)


class ProgressLike(Protocol):
    stage: str
    done: int
    total: int | None
    eta_seconds: float | None


class ResultLike(Protocol):
    frames: int
    fps: float


@dataclass(frozen=True)
class Execution:
    source: Path
    driving: Path
    output: Path
    engine: str
    options: dict[str, Any]


Executor = Callable[[Execution, Callable[[Any], None], Callable[[], bool]], Any]


def torch_threads(settings: Settings) -> int:
    """Torch threads per job: the cores shared fairly between the jobs that run at once."""
    cores = os.cpu_count() or 1
    return settings.torch_threads or max(1, cores // settings.worker_concurrency)


def request_fields(settings: Settings, execution: Execution) -> dict[str, Any]:
    """``AnimationRequest`` keyword arguments as plain data, so they can cross a process boundary.

    Resolving the engine here (before torch is imported) makes a bad engine choice fail fast.
    """
    engine = request_options(settings, execution.engine)
    options = {k: v for k, v in execution.options.items() if k in PIPELINE_OPTIONS}
    return {
        "source": execution.source,
        "driving": execution.driving,
        "output": execution.output,
        **engine,
        "device": settings.device,
        "precision": settings.precision,
        "batch_size": settings.batch_size,
        **options,
    }


class PipelineExecutor:
    """Runs the real pipeline in the calling thread; for embedding and tests (the service uses a child
    process, see `animatica.jobs.child`, so animation never competes with requests for the GIL)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._configured = False
        self._lock = threading.Lock()

    def _configure_torch(self) -> None:
        with self._lock:
            if self._configured:
                return
            import torch

            torch.set_num_threads(torch_threads(self._settings))
            self._configured = True

    def __call__(
        self, execution: Execution, on_progress: Callable[[Any], None], should_cancel: Callable[[], bool]
    ) -> Any:
        from animatica.pipeline import AnimationRequest, animate

        fields = request_fields(self._settings, execution)
        self._configure_torch()
        return animate(AnimationRequest(**fields), on_progress=on_progress, should_cancel=should_cancel)
