"""FOMM model configurations in the public first-order-model YAML format.

Users arrive with YAML files written for the reference implementation and with checkpoints trained
from them, so key names, and the meaning of an omitted key, follow that implementation: an omitted
key means what the reference constructor's default means. The model sections are validated
strictly because a typo there silently builds a different network, which then fails to load a
checkpoint with a far less helpful message. Everything outside ``model_params`` is kept as given, so
dataset and training options Animatica does not read survive a round trip through a checkpoint.

The module also knows which state-dict shapes a config implies (``expected_shapes``), so a
checkpoint can be matched to a built-in config without building any network.
"""

import functools
from collections.abc import Mapping, Sequence
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
_NETWORK_PREFIXES = ("generator.", "kp_detector.")
_MAX_REPORTED_PROBLEMS = 3

Shapes = dict[str, tuple[int, ...]]


def _scale(value: object) -> int | float:
    """Accept a resolution factor in (0, 1], keeping ints as ints.

    The reference names discriminator and pyramid modules ``str(scale)``, so ``1`` and ``1.0``
    give different state-dict keys (``discs.1`` vs ``discs.1-0``); converting would break loading.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(f"must be a number in (0, 1], got {value!r}")
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


# --- state-dict shapes -----------------------------------------------------------------------------


def expected_shapes(cfg: FommConfig) -> Shapes:
    """Every state-dict key and shape the config implies, prefixed by network, in registration order.

    Derived from the layer arithmetic alone, so checkpoints can be checked or matched to a config
    without allocating tens of millions of parameters.
    """
    shapes: Shapes = {}
    for prefix, part in (
        ("kp_detector.", _kp_detector_shapes(cfg)),
        ("generator.", _generator_shapes(cfg)),
        ("discriminator.", _discriminator_shapes(cfg)),
    ):
        shapes.update({prefix + key: shape for key, shape in part.items()})
    return shapes


def match_builtin(shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """Built-in configs whose generator and keypoint detector have exactly these keys and shapes.

    Keys of other entries (discriminator, optimisers) are ignored: published inference checkpoints
    do not have them, and the discriminator does not affect animation.
    """
    wanted = {key: tuple(shape) for key, shape in shapes.items() if key.startswith(_NETWORK_PREFIXES)}
    return [name for name in BUILTIN_CONFIGS if _builtin_network_shapes(name) == wanted]


@functools.cache
def _builtin_network_shapes(name: str) -> Shapes:
    everything = expected_shapes(load_config(name))
    return {key: shape for key, shape in everything.items() if key.startswith(_NETWORK_PREFIXES)}


def _level_width(block_expansion: int, max_features: int, level: int) -> int:
    """Channel count after ``level`` halvings: doubling per level, capped at max_features."""
    return min(max_features, block_expansion * 2**level)


def _conv(name: str, out_ch: int, in_ch: int, kernel: int) -> Shapes:
    return {f"{name}.weight": (out_ch, in_ch, kernel, kernel), f"{name}.bias": (out_ch,)}


def _spectral_conv(name: str, out_ch: int, in_ch: int, kernel: int) -> Shapes:
    """Spectral norm keeps the raw weight as ``weight_orig`` plus power-iteration vectors u and v."""
    return {
        f"{name}.bias": (out_ch,),
        f"{name}.weight_orig": (out_ch, in_ch, kernel, kernel),
        f"{name}.weight_u": (out_ch,),
        f"{name}.weight_v": (in_ch * kernel * kernel,),
    }


def _batch_norm(name: str, channels: int) -> Shapes:
    return {
        f"{name}.weight": (channels,),
        f"{name}.bias": (channels,),
        f"{name}.running_mean": (channels,),
        f"{name}.running_var": (channels,),
        f"{name}.num_batches_tracked": (),
    }


def _conv_bn(name: str, out_ch: int, in_ch: int, kernel: int) -> Shapes:
    return {**_conv(f"{name}.conv", out_ch, in_ch, kernel), **_batch_norm(f"{name}.norm", out_ch)}


def _antialias_kernel(name: str, channels: int, scale: float) -> Shapes:
    """Depthwise Gaussian kernel; its size follows sigma = (1/scale - 1)/2 with ~4 sigma per side."""
    if scale == 1:
        return {}
    sigma = (1 / scale - 1) / 2
    size = 2 * round(sigma * 4) + 1
    return {f"{name}.weight": (channels, 1, size, size)}


def _hourglass(
    name: str, block_expansion: int, in_features: int, num_blocks: int, max_features: int
) -> Shapes:
    """U-Net: encoder block i halves the resolution; decoder inputs concatenate the mirrored skip."""
    shapes: Shapes = {}
    for i in range(num_blocks):
        in_ch = in_features if i == 0 else _level_width(block_expansion, max_features, i)
        out_ch = _level_width(block_expansion, max_features, i + 1)
        shapes.update(_conv_bn(f"{name}.encoder.down_blocks.{i}", out_ch, in_ch, 3))
    for j, i in enumerate(reversed(range(num_blocks))):
        skip_factor = 1 if i == num_blocks - 1 else 2
        in_ch = skip_factor * _level_width(block_expansion, max_features, i + 1)
        out_ch = _level_width(block_expansion, max_features, i)
        shapes.update(_conv_bn(f"{name}.decoder.up_blocks.{j}", out_ch, in_ch, 3))
    return shapes


def _hourglass_out(block_expansion: int, in_features: int) -> int:
    """The last decoder block outputs block_expansion channels, concatenated with the input."""
    return block_expansion + in_features


def _kp_detector_shapes(cfg: FommConfig) -> Shapes:
    common = cfg.model_params.common_params
    kp = cfg.model_params.kp_detector_params
    shapes = _hourglass("predictor", kp.block_expansion, common.num_channels, kp.num_blocks, kp.max_features)
    features = _hourglass_out(kp.block_expansion, common.num_channels)
    shapes.update(_conv("kp", common.num_kp, features, 7))
    if common.estimate_jacobian:
        maps = 1 if kp.single_jacobian_map else common.num_kp
        shapes.update(_conv("jacobian", 4 * maps, features, 7))
    shapes.update(_antialias_kernel("down", common.num_channels, kp.scale_factor))
    return shapes


def _generator_shapes(cfg: FommConfig) -> Shapes:
    common = cfg.model_params.common_params
    gen = cfg.model_params.generator_params
    shapes: Shapes = {}
    dense = gen.dense_motion_params
    if dense is not None:
        # Per keypoint and for the background: a heatmap channel plus the warped source image.
        in_features = (common.num_kp + 1) * (common.num_channels + 1)
        name = "dense_motion_network"
        shapes.update(
            _hourglass(
                f"{name}.hourglass", dense.block_expansion, in_features, dense.num_blocks, dense.max_features
            )
        )
        features = _hourglass_out(dense.block_expansion, in_features)
        shapes.update(_conv(f"{name}.mask", common.num_kp + 1, features, 7))
        if gen.estimate_occlusion_map:
            shapes.update(_conv(f"{name}.occlusion", 1, features, 7))
        shapes.update(_antialias_kernel(f"{name}.down", common.num_channels, dense.scale_factor))

    width = functools.partial(_level_width, gen.block_expansion, gen.max_features)
    shapes.update(_conv_bn("first", gen.block_expansion, common.num_channels, 7))
    for i in range(gen.num_down_blocks):
        shapes.update(_conv_bn(f"down_blocks.{i}", width(i + 1), width(i), 3))
    for i in range(gen.num_down_blocks):
        level = gen.num_down_blocks - i
        shapes.update(_conv_bn(f"up_blocks.{i}", width(level - 1), width(level), 3))
    bottleneck = width(gen.num_down_blocks)
    for i in range(gen.num_bottleneck_blocks):
        block = f"bottleneck.r{i}"
        shapes.update(_conv(f"{block}.conv1", bottleneck, bottleneck, 3))
        shapes.update(_conv(f"{block}.conv2", bottleneck, bottleneck, 3))
        shapes.update(_batch_norm(f"{block}.norm1", bottleneck))
        shapes.update(_batch_norm(f"{block}.norm2", bottleneck))
    shapes.update(_conv("final", common.num_channels, gen.block_expansion, 7))
    return shapes


def _discriminator_shapes(cfg: FommConfig) -> Shapes:
    common = cfg.model_params.common_params
    disc = cfg.model_params.discriminator_params
    conv = _spectral_conv if disc.sn else _conv
    shapes: Shapes = {}
    for scale in disc.scales:
        name = "discs." + str(scale).replace(".", "-")
        out_ch = 0
        for i in range(disc.num_blocks):
            if i == 0:
                in_ch = common.num_channels + (common.num_kp if disc.use_kp else 0)
            else:
                in_ch = _level_width(disc.block_expansion, disc.max_features, i)
            out_ch = _level_width(disc.block_expansion, disc.max_features, i + 1)
            block = f"{name}.down_blocks.{i}"
            shapes.update(conv(f"{block}.conv", out_ch, in_ch, 4))
            if i != 0:  # instance norm with affine parameters and no running statistics
                shapes.update({f"{block}.norm.weight": (out_ch,), f"{block}.norm.bias": (out_ch,)})
        shapes.update(conv(f"{name}.conv", 1, out_ch, 1))
    return shapes
