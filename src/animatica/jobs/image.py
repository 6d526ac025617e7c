"""The image job kind: a prompt (and, for some operations, a picture or two) in, one PNG out.

Every operation of the image creator (`animatica.images.run.run_image_request`) runs as this one
kind, so a picture made from a prompt goes through the same lifecycle as an animation: queued at
its owner's plan priority, one credit reserved and consumed only when the PNG is stored, progress
per denoising step, a cancel answered between two steps, and it runs on the service's runner and
on Celery workers alike.

A job has at most two stored pictures, in the two input slots every job has. Which request field
each one fills depends on the operation (the init image and its mask for an inpainting, the
content and style pictures for a style transfer, a reference photo for the pose and face
condition), so the row's options say it: ``pictures`` maps a slot to a field of `ImageRequest`.
A picture made from a prompt alone has no stored input at all.

The operator's model files are read from the worker's settings when the job starts, never from the
row: a job carries the user's choices only (prompt, size, steps, …, LoRA file *names* within the
operator's folder).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError
from animatica.jobs.kinds import Execution, JobKind, OnProgress, Result, ShouldCancel, register
from animatica.jobs.messages import CANCELED
from animatica.settings import Settings

NAME = "image"
ENGINE = "diffusion"
COST = 1  # credits per picture, whatever its size: one picture is about one animation's work
RESULT = "result.png"
# Request fields a stored picture may fill (the slot -> field map of a job's ``pictures`` option).
PICTURE_FIELDS = ("init_image", "mask", "control_image", "style_image")


@dataclass(frozen=True)
class ImageStep:
    """A progress report (the attributes the job core reads); crosses the child's pipe."""

    stage: str
    done: int = 0
    total: int | None = None
    eta_seconds: float | None = None


def request_fields(options: Mapping[str, Any], pictures: Mapping[str, Path]) -> dict[str, Any]:
    """``ImageRequest`` keyword arguments from a job row's options (JSON: lists where the request has
    tuples; keys that are no request field, like ``pictures``, left out) and its local pictures
    (``pictures``: slot -> local file)."""
    from animatica.images.request import ImageRequest

    known = {field.name for field in dataclass_fields(ImageRequest)}
    values = {key: value for key, value in options.items() if key in known}
    if values.get("size") is not None:
        values["size"] = tuple(values["size"])
    if values.get("loras") is not None:
        values["loras"] = tuple((str(name), float(weight)) for name, weight in values["loras"])
    slots: Mapping[str, str] = options.get("pictures") or {}
    for slot, field_name in slots.items():
        if field_name not in PICTURE_FIELDS:
            raise AnimaticaError(f"the job names an unknown picture field {field_name!r}")
        if slot not in pictures:
            raise AnimaticaError(f"the job has no {slot} picture (it may have expired)")
        values[field_name] = pictures[slot]
    return values


def build_request(options: Mapping[str, Any], pictures: Mapping[str, Path]) -> Any:
    """The `ImageRequest` of a job, checked (``validate`` raises the user-facing refusal)."""
    from animatica.images.request import ImageRequest

    request = ImageRequest(**request_fields(options, pictures))
    request.validate()
    return request


def execution(
    output: Path, options: Mapping[str, Any], pictures: Mapping[str, Path] | None = None
) -> Execution:
    """A picture of ``options`` written to ``output``; ``pictures``: slot -> local file."""
    return Execution(NAME, dict(pictures or {}), output, ENGINE, dict(options))


def request(settings: Settings, execution: Execution) -> dict[str, Any]:
    """The job as plain data, checked here (in the runner's process, before any model loads), with
    the worker's own model files."""
    from animatica.images.models import ImageModels

    build_request(execution.options, execution.inputs)
    return {
        "options": dict(execution.options),
        "pictures": {slot: str(path) for slot, path in execution.inputs.items()},
        "output": str(execution.output),
        "models": ImageModels.from_settings(settings),
        "device": settings.device,
        "precision": settings.precision,
    }


def run(fields: dict[str, Any], on_progress: OnProgress, should_cancel: ShouldCancel) -> Result:
    """Make the picture, reporting each denoising step and stopping between two when canceled."""
    from animatica.device import resolve_device
    from animatica.images.pipelines import stay_offline
    from animatica.images.run import run_image_request

    stay_offline()  # whichever process runs it: the service's runner or a Celery worker

    def check() -> None:
        if should_cancel():
            raise AnimaticaError(CANCELED)

    def step(done: int, total: int) -> None:
        on_progress(ImageStep("generate", done, total))
        check()

    pictures = {slot: Path(path) for slot, path in fields["pictures"].items()}
    request = build_request(fields["options"], pictures)
    on_progress(ImageStep("load"))
    check()
    device = str(resolve_device(fields["device"]))
    picture = run_image_request(
        request, fields["models"], progress=step, device=device, precision=fields["precision"]
    )
    check()
    output = Path(fields["output"])
    picture.save(output, format="PNG")
    on_progress(ImageStep("done", done=1, total=1))
    return Result(frames=1)


def size(options: Mapping[str, Any]) -> int | None:
    """The job's size in the steps its progress counts, for its time limit."""
    steps = options.get("steps")
    return int(steps) if steps else 1


IMAGE = register(
    JobKind(
        name=NAME,
        inputs=(),
        optional_inputs=("source", "driving"),
        result=RESULT,
        run=run,
        request=request,
        size=size,
        cost=COST,
    )
)
