"""FOMM model configurations in the public first-order-model YAML format.

Users arrive with YAML files written for the reference implementation and with checkpoints trained
from them, so key names, and the meaning of an omitted key, follow that implementation: an omitted
key means what the reference constructor's default means. The model sections are validated
strictly because a typo there silently builds a different network, which then fails to load a
checkpoint with a far less helpful message. Everything outside ``model_params`` is kept as given, so
dataset and training options Animatica does not read survive a round trip through a checkpoint.
The state-dict shapes a config implies are read from the networks it builds (``networks.py``).
"""

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator

from animatica.errors import ConfigError

BUILTIN_CONFIGS: tuple[str, ...] = (
    "vox-256",
    "vox-adv-256",
    "taichi-256",
    "taichi-adv-256",
    "bair-256",
    "fashion-256",
    "mgif-256",
    "nemo-256",
)

_CONFIG_DIR = Path(__file__).with_name("configs")
_MAX_REPORTED_PROBLEMS = 3


def _scale(value: object) -> int | float:
    """Accept a resolution factor 1/N for a whole N (1, 0.5, 0.25, ...), keeping ints as ints.

    Every scale is applied by the anti-aliased down-sampling, which keeps every N-th pixel and so
    cannot build any other factor. The reference names discriminator and pyramid modules
    ``str(scale)``, so ``1`` and ``1.0`` give different state-dict keys (``discs.1`` vs
    ``discs.1-0``); converting would break loading.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"must be a number in (0, 1], got {value!r}")
    if not math.isclose(int(1 / value) * value, 1.0):  # the same test as AntiAliasInterpolation2d
        raise ValueError(f"must be 1/N for a whole N (1, 0.5, 0.25, ...), got {value!r}")
    return value


Scale = Annotated[int | float, PlainValidator(_scale)]

# Model sections are constructor keyword arguments in the reference: unknown keys are errors there
# too, and YAML already produces real ints/bools, so strict typing only rejects genuine mistakes.
_MODEL_SECTION = ConfigDict(extra="forbid", strict=True)
_OPEN_SECTION = ConfigDict(extra="allow")


class CommonParams(BaseModel):
    """Parameters shared by the keypoint detector, the generator and the discriminator."""

    model_config = _MODEL_SECTION

    num_kp: int = Field(ge=1)
    num_channels: int = Field(3, ge=1)
    estimate_jacobian: bool = False


class KpDetectorParams(BaseModel):
    model_config = _MODEL_SECTION

    temperature: float = Field(gt=0)
    block_expansion: int = Field(ge=1)
    max_features: int = Field(ge=1)
    num_blocks: int = Field(ge=1)
    scale_factor: Scale = 1
    single_jacobian_map: bool = False
    pad: int = Field(0, ge=0)


class DenseMotionParams(BaseModel):
    """The generator's dense motion network.

    ``estimate_occlusion_map`` is deliberately not accepted here: the reference passes the
    generator's own flag, so the key in this section would be a duplicate argument there.
    """

    model_config = _MODEL_SECTION

    block_expansion: int = Field(ge=1)
    max_features: int = Field(ge=1)
    num_blocks: int = Field(ge=1)
    scale_factor: Scale = 1
    kp_variance: float = Field(0.01, gt=0)


class GeneratorParams(BaseModel):
    model_config = _MODEL_SECTION

    block_expansion: int = Field(ge=1)
    max_features: int = Field(ge=1)
    num_down_blocks: int = Field(ge=0)
    num_bottleneck_blocks: int = Field(ge=0)
    estimate_occlusion_map: bool = False
    dense_motion_params: DenseMotionParams | None = None


class DiscriminatorParams(BaseModel):
    """Multi-scale patch discriminator; only training reads it, so the whole section may be omitted.

    ``scales`` defaults to ``[1]`` rather than the reference's empty tuple, which would build a
    discriminator with no layers.
    """

    model_config = _MODEL_SECTION

    scales: list[Scale] = Field(default_factory=lambda: [1], min_length=1)
    block_expansion: int = Field(64, ge=1)
    max_features: int = Field(512, ge=1)
    num_blocks: int = Field(4, ge=1)
    sn: bool = False
    use_kp: bool = False
    kp_variance: float = Field(0.01, gt=0)


class ModelParams(BaseModel):
    model_config = _MODEL_SECTION

    common_params: CommonParams
    kp_detector_params: KpDetectorParams
    generator_params: GeneratorParams
    discriminator_params: DiscriminatorParams = Field(default_factory=DiscriminatorParams)


class DatasetParams(BaseModel):
    model_config = _OPEN_SECTION

    frame_shape: list[int] = Field(default_factory=lambda: [256, 256, 3], min_length=2, max_length=3)

    @field_validator("frame_shape")
    @classmethod
    def _positive(cls, shape: list[int]) -> list[int]:
        if any(size < 1 for size in shape):
            raise ValueError(f"every size must be at least 1, got {shape}")
        return shape


class TransformParams(BaseModel):
    """Random warps for the equivariance losses; the thin-plate part needs both tps keys."""

    model_config = _OPEN_SECTION

    sigma_affine: float = Field(ge=0)
    sigma_tps: float | None = Field(None, ge=0)
    points_tps: int | None = Field(None, ge=1)


class LossWeights(BaseModel):
    """Loss weights; an omitted weight is 0, which is how the reference treats a disabled loss."""

    model_config = _OPEN_SECTION

    generator_gan: float = Field(0, ge=0)
    discriminator_gan: float = Field(0, ge=0)
    feature_matching: list[float] = Field(default_factory=list)
    perceptual: list[float] = Field(default_factory=list)
    equivariance_value: float = Field(0, ge=0)
    equivariance_jacobian: float = Field(0, ge=0)


class TrainParams(BaseModel):
    model_config = _OPEN_SECTION

    num_epochs: int = Field(ge=1)
    num_repeats: int = Field(1, ge=1)
    epoch_milestones: list[int] = Field(default_factory=list)
    lr_generator: float = Field(ge=0)
    lr_discriminator: float = Field(ge=0)
    lr_kp_detector: float = Field(ge=0)
    batch_size: int = Field(ge=1)
    scales: list[Scale] = Field(min_length=1)
    checkpoint_freq: int = Field(ge=1)
    transform_params: TransformParams
    loss_weights: LossWeights


class NormalizationParams(BaseModel):
    """How driving keypoints are mapped onto the source; keyword arguments in the reference."""

    model_config = _MODEL_SECTION

    adapt_movement_scale: bool = False
    use_relative_movement: bool = False
    use_relative_jacobian: bool = False


class AnimateParams(BaseModel):
    model_config = _OPEN_SECTION

    normalization_params: NormalizationParams = Field(default_factory=NormalizationParams)


class FommConfig(BaseModel):
    """A whole config file; unknown top-level sections are kept untouched."""

    model_config = _OPEN_SECTION

    dataset_params: DatasetParams = Field(default_factory=DatasetParams)
    model_params: ModelParams
    train_params: TrainParams | None = None
    reconstruction_params: dict[str, Any] = Field(default_factory=dict)
    animate_params: AnimateParams = Field(default_factory=AnimateParams)
    visualizer_params: dict[str, Any] = Field(default_factory=dict)


# --- loading ---------------------------------------------------------------------------------------


# Animatica's own training configs, loadable by name too but not public architectures (so they are
# not offered when matching a public checkpoint).
OWN_CONFIGS: tuple[str, ...] = ("demo-64",)


def builtin_config_path(name: str) -> Path:
    """Path of a shipped config file."""
    if name in OWN_CONFIGS:
        return _CONFIG_DIR / f"{name}.yaml"
    if name not in BUILTIN_CONFIGS:
        raise ConfigError(f"Unknown built-in config '{name}'; choose one of: {', '.join(BUILTIN_CONFIGS)}.")
    return _CONFIG_DIR / f"{name}.yaml"


def load_config(name_or_path: str | Path) -> FommConfig:
    """Load a built-in config by name, or a YAML file in the public first-order-model format."""
    path, label = _resolve(name_or_path)
    return _validate(_read_yaml(path, label), label)


def config_from_dict(data: Mapping[str, Any], source: str = "the stored config") -> FommConfig:
    """Rebuild a config from ``config_to_dict`` output, e.g. the copy kept inside a checkpoint."""
    return _validate(data, source)


def config_to_dict(cfg: FommConfig) -> dict[str, Any]:
    """Plain dict (YAML-safe types only) with every default filled in, in the public key names."""
    return cfg.model_dump(mode="python")


def _resolve(name_or_path: str | Path) -> tuple[Path, str]:
    text = str(name_or_path)
    if text in BUILTIN_CONFIGS or text in OWN_CONFIGS:
        return builtin_config_path(text), f"built-in config '{text}'"
    path = Path(text).expanduser()
    if path.is_file():
        return path, str(path)
    if path.exists():
        raise ConfigError(f"Config path {path} is not a file; give a YAML file or a built-in config name.")
    looks_like_path = (
        isinstance(name_or_path, Path)
        or "/" in text
        or "\\" in text
        or path.suffix.lower() in (".yaml", ".yml")
    )
    if looks_like_path:
        hint = f" (the built-in config '{path.stem}' needs no file)" if path.stem in BUILTIN_CONFIGS else ""
        raise ConfigError(
            f"Config file {path} does not exist{hint}; give an existing YAML file "
            f"or one of the built-in configs: {', '.join(BUILTIN_CONFIGS)}."
        )
    raise ConfigError(
        f"Unknown config '{text}'; use one of the built-in configs ({', '.join(BUILTIN_CONFIGS)}) "
        "or the path to a YAML file."
    )


def _read_yaml(path: Path, label: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigError(
            f"Cannot read config {label} ({reason}); check the file and its permissions."
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            f"Config {label} is not valid YAML{where} ({problem}); fix the syntax there."
        ) from exc


def _validate(data: Any, label: str) -> FommConfig:
    if data is None:
        raise ConfigError(f"Config {label} is empty; it needs at least a model_params section.")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"Config {label} must be a mapping of sections (model_params, dataset_params, ...), "
            f"not a {type(data).__name__}."
        )
    if "model_params" not in data:
        raise ConfigError(
            f"Config {label} has no model_params section; add one with common_params, "
            "kp_detector_params and generator_params (see the built-in 'vox-256')."
        )
    try:
        return FommConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, label)) from exc


def _describe(exc: ValidationError, label: str) -> str:
    """One line naming each offending key, so a user can fix the file without reading a traceback."""
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            problems.append(f"missing key '{where}'")
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown key '{where}'")
        elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            problems.append(f"'{where}' must be a mapping of keys, not {type(error['input']).__name__}")
        else:
            message = error["msg"].removeprefix("Value error, ")
            shown = repr(error["input"])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            problems.append(f"'{where}' is {shown}: {message[:1].lower()}{message[1:]}")
    extra = len(problems) - _MAX_REPORTED_PROBLEMS
    summary = "; ".join(problems[:_MAX_REPORTED_PROBLEMS])
    if extra > 0:
        summary += f"; and {extra} more"
    return (
        f"Invalid config {label}: {summary}; fix the file (the built-in configs show valid keys and values)."
    )


# --- network arguments -----------------------------------------------------------------------------


def kp_detector_kwargs(cfg: FommConfig) -> dict[str, Any]:
    """Keyword arguments of the keypoint detector, named as the reference constructor names them."""
    params = cfg.model_params
    return {**params.common_params.model_dump(), **params.kp_detector_params.model_dump()}


def generator_kwargs(cfg: FommConfig) -> dict[str, Any]:
    """Keyword arguments of the generator; ``dense_motion_params`` stays a nested dict (or None)."""
    params = cfg.model_params
    return {**params.common_params.model_dump(), **params.generator_params.model_dump()}


def discriminator_kwargs(cfg: FommConfig) -> dict[str, Any]:
    """Keyword arguments of the multi-scale discriminator.

    As in the reference, common_params are included whole; the discriminator ignores
    ``estimate_jacobian``.
    """
    params = cfg.model_params
    return {**params.common_params.model_dump(), **params.discriminator_params.model_dump()}


def frame_size(cfg: FommConfig) -> tuple[int, int]:
    """(height, width) the model was configured for."""
    shape = cfg.dataset_params.frame_shape
    return shape[0], shape[1]
