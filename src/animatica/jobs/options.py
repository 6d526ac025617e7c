"""The options of one animation job: checked once, stored with the job, turned into pipeline arguments.

A user sets the engine and how the motion is applied; the server adds what it measured on the
upload (the clip's length limit in frames and its frame rate). Every HTTP entry point builds this
model, so an engine or fit nobody knows is refused (``InvalidOptions``, HTTP 422) before anything
is stored or charged. The liveportrait engine's motion switches (animated region, stitching, driving
multiplier, eye and lip retargeting) are options too: set away from their defaults they need that
engine, named or chosen by ``auto``, so a job never silently runs without them. The job row keeps
the engine in its own column and the rest as JSON (`to_row` / `from_row`); fields missing from an
older row take their defaults, and keys the model does not know (a planted ``checkpoint``, say)
are dropped, since only the operator picks weights.
"""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from animatica.engines import AUTO, REQUESTABLE, choose_engine, unknown_engine_message
from animatica.errors import AnimaticaError, CheckpointError
from animatica.liveportrait.motion_options import check_multiplier, check_region
from animatica.media.fit import FIT_MODES

if TYPE_CHECKING:
    from animatica.jobs.engine_choice import EngineWeights

USER_FIELDS = (
    "engine",
    "relative",
    "adapt_scale",
    "crop_face",
    "find_best_frame",
    "fit",
    *("region", "stitching", "driving_multiplier", "eye_retargeting", "lip_retargeting"),
)
# The liveportrait engine's own options and their defaults (those of ``animatica animate``).
LIVEPORTRAIT_DEFAULTS = {
    "region": "all",
    "stitching": True,
    "driving_multiplier": 1.0,
    "eye_retargeting": False,
    "lip_retargeting": False,
}
# Set by the server from the checked upload, never taken from a request.
SERVER_FIELDS = ("max_frames", "frame_rate")


class InvalidOptions(AnimaticaError):
    """An option value the service does not accept; the service answers 422."""


def _checked(check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``, its refusal turned into the service's 422 with the check's own words."""
    try:
        return check(value)
    except AnimaticaError as error:
        message = str(error)
        raise InvalidOptions(f"{message[:1].upper()}{message[1:]}.") from None


class JobOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    engine: str = AUTO  # one of engines.REQUESTABLE; a stored job holds the concrete engine
    relative: bool = True
    adapt_scale: bool = False
    # None: as the engine wants (on for liveportrait, whose networks expect a face crop).
    crop_face: bool | None = None
    find_best_frame: bool = False
    fit: str = "crop"  # one of media.fit.FIT_MODES
    # liveportrait only (``liveportrait.motion_options``): what moves, the stitching network, and
    # how far the motion is carried.
    region: str = "all"  # one of motion_options.REGIONS
    stitching: bool = True
    driving_multiplier: float = 1.0  # within motion_options.MULTIPLIER_LIMITS
    # Eye / lip openness set from each driving frame's own landmarks by the retargeting networks.
    eye_retargeting: bool = False
    lip_retargeting: bool = False
    # The plan's length limit in frames at the clip's rate: decoding stops there, whatever the
    # clip's header claims. None: no limit (an animation outside any plan).
    max_frames: int | None = Field(default=None, ge=1)
    # The driving clip's frame rate as measured on upload (None: it declared none), so that a
    # re-run can turn the current plan's limit into frames without reading the clip again.
    frame_rate: float | None = Field(default=None, gt=0)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value not in REQUESTABLE:
            raise InvalidOptions(unknown_engine_message(value))
        return value

    @field_validator("fit")
    @classmethod
    def _known_fit(cls, value: str) -> str:
        if value not in FIT_MODES:
            raise InvalidOptions(f"Unknown fit {value!r}; use one of {', '.join(FIT_MODES)}.")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return _checked(check_region, value)

    @field_validator("driving_multiplier")
    @classmethod
    def _multiplier_in_range(cls, value: float) -> float:
        return _checked(check_multiplier, value)

    @model_validator(mode="after")
    def _liveportrait_options_need_liveportrait(self) -> "JobOptions":
        changed = [key for key, default in LIVEPORTRAIT_DEFAULTS.items() if getattr(self, key) != default]
        if changed and self.engine not in ("liveportrait", AUTO):
            raise InvalidOptions(
                f"{', '.join(changed)}: only the liveportrait engine has "
                f"{'this option' if len(changed) == 1 else 'these options'}, not the {self.engine} engine."
            )
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _one_error_type(cls, data: Any, handler: Any) -> Any:
        """Wrong types (a number where a yes/no belongs) are refused like wrong names."""
        try:
            return handler(data)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "options"
            raise InvalidOptions(f"Invalid {field}: {first['msg']}.") from None

    @classmethod
    def from_row(cls, engine: str, options: Mapping[str, Any]) -> "JobOptions":
        """The options of a stored job (its ``engine`` column and ``options`` JSON)."""
        return cls.model_validate({**(options or {}), "engine": engine})

    def to_row(self) -> dict[str, Any]:
        """The JSON for the job row's ``options`` column (the engine has a column of its own)."""
        return self.model_dump(exclude={"engine"})

    def but(self, **changes: Any) -> "JobOptions":
        """A copy with ``changes``, validated like a new model."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def liveportrait_options(self) -> dict[str, Any]:
        """The liveportrait engine's keyword arguments (``engines.liveportrait.LivePortraitEngine.load``)."""
        return {key: getattr(self, key) for key in LIVEPORTRAIT_DEFAULTS}

    def request_fields(
        self,
        source: Path,
        driving: Path,
        output: Path | str,
        *,
        weights: "EngineWeights | None",
        device: str,
        precision: str,
        batch_size: int,
    ) -> dict[str, Any]:
        """Keyword arguments of ``pipeline.AnimationRequest``, as plain data that crosses processes.

        The weights, device, precision and batch size are the machine's, never the job's: the
        caller passes the operator's (``engine_choice.weights_for``). ``auto`` resolves here with
        those weights, by the same rule as on the command line (`engines.choose_engine`).
        """
        checkpoint = str(weights.checkpoint) if weights is not None else None
        if self.engine == AUTO and weights is not None:
            engine = weights.engine  # the operator's default engine, whose weights these are
        else:
            engine = choose_engine(self.engine, checkpoint)
        fields: dict[str, Any] = {"source": source, "driving": driving, "output": output, "engine": engine}
        if engine == "fomm":
            if weights is None or weights.engine != "fomm":
                raise CheckpointError("the fomm engine needs FOMM weights; choose the landmarks engine.")
            fields.update(checkpoint=checkpoint, config=weights.config)
        elif engine == "liveportrait":
            if weights is None or weights.engine != "liveportrait":
                raise CheckpointError(
                    "the liveportrait engine needs LivePortrait weights; choose the landmarks engine."
                )
            fields.update(checkpoint=checkpoint, engine_options=self.liveportrait_options())
        elif engine == "vaegan":
            if weights is None or weights.engine != "vaegan":
                raise CheckpointError("the vaegan engine needs VAE+GAN weights; choose the landmarks engine.")
            fields.update(checkpoint=checkpoint)
        fields.update(
            device=device,
            precision=precision,
            batch_size=batch_size,
            relative=self.relative,
            adapt_scale=self.adapt_scale,
            crop_face=self.crop_face,
            find_best_frame=self.find_best_frame,
            fit=self.fit,
            max_frames=self.max_frames,
        )
        return fields
