"""VAE+GAN configuration: the networks' shape, the loss weights and the training settings.

A config is a frozen dataclass that round-trips through YAML and through the checkpoint (so
animation needs no YAML). Unknown keys are errors: a typo in a width would otherwise build a
different network that then refuses the checkpoint with a less helpful message.

The default is the architecture of the VAE+GAN face-animation method this engine reproduces:
64x64 RGB, a 200-dimensional latent, an encoder of 7 convolutions and 3 linear layers, a decoder
of 3 linear layers and 7 convolutions, a discriminator of 4 convolutions and 3 linear layers.
That method publishes no widths, loss weights, learning rate or batch size; the values chosen
here are explained where they are set.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from animatica.errors import ConfigError

SIZES = (64, 128, 256)
RECONSTRUCTIONS = ("bce", "l1")
MOUTH_ERRORS = ("l1", "l2")
CONDITIONS = ("none", "source")
CONVS = 7  # per encoder and per decoder
DISC_CONVS = 4
_CONFIG_DIR = Path(__file__).with_name("configs")


def builtin_configs() -> list[str]:
    return sorted(p.stem for p in _CONFIG_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training objective's terms.

    Reconstruction and KL are per-image sums (nats), so weight 1 on both is the VAE's evidence
    bound, the objective whose latent space is smooth enough for latent arithmetic. The
    adversarial term is one logit per image; 8 makes its gradient a visible sharpening force
    without letting it outvote reconstruction (at 1 it is lost in a sum over 12,288 pixels).
    Feature matching (the discriminator's features of the reconstruction vs the real image) and
    perceptual distance are off by default: they cost time that the CPU budget spends on steps.
    ``motion`` (models conditioned on the source, trained on synthetic faces, whose items know
    their expression and pose) asks the first latent dimensions' difference ``z_t - z_0`` to equal
    the driving frame's change of the rendered parameters (squared error per image): the encoder
    learns at once what to say, where from reconstruction alone it learns it only after the
    decoder has learnt to listen, which a short CPU budget does not reach.
    ``mouth`` (the same models and data) adds the L1 of the region the mouth moves (lips and chin,
    from the rendered landmarks of the photo and the target) once more, with this weight: the
    region is a few percent of the pixels, and without it the decoder learns the head turn but
    leaves the mouth as it is in the photo although the latent says it opens.
    ``mouth_painted`` compares the decoder's painted pixels on their own with the target's mouth
    region (same error as ``mouth``): the warp of a closed-mouth photo cannot open the mouth, and
    while the blend mask favours the warp the painted pixels get almost no gradient through it.
    """

    kl: float = 1.0
    reconstruction: float = 1.0
    adversarial: float = 8.0
    feature_matching: float = 0.0
    perceptual: float = 0.0
    motion: float = 0.0
    mouth: float = 0.0
    mouth_painted: float = 0.0


@dataclass(frozen=True)
class TrainParams:
    """Adam for the VAE and the discriminator. ``kl_warmup_steps`` ramps the KL weight up from 0,
    the usual guard against posterior collapse early in training; ``adversarial_after`` starts
    the discriminator's game only once reconstructions look like faces, so it does not win on
    noise and stall the decoder. ``cross_identity`` (models conditioned on the source, trained on
    a synthetic faces dataset) is the share of training items whose motion comes from another
    person, the target then rendered as the source person making it: the latent difference has
    to move any face, not only the one it was encoded from. ``latent_noise`` scales the
    reparameterisation noise of the driving frame's latent in such a model's training (1 is the
    VAE's sample, 0 its posterior mean, which is what animation uses): the motion the latent is
    told (a mouth opening moves its dimension by about 0.2) is small beside a posterior spread of
    about 1, so with the full noise the decoder learns to ignore it. ``motion_scale`` multiplies
    the changes ``loss.motion`` asks of the latent: at 1 a mouth opening moves its dimension by
    about 0.2 while a head turn moves the rest of the latent by a norm of 10 or more, and the
    decoder, its weights moved by Adam at the same rate for every input, hears the large
    inputs first."""

    batch_size: int = 32
    lr: float = 5e-4
    lr_discriminator: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    kl_warmup_steps: int = 1000
    adversarial_after: int = 1000
    num_repeats: int = 8
    steps: int = 10000
    cross_identity: float = 0.75
    latent_noise: float = 1.0
    motion_scale: float = 1.0


@dataclass(frozen=True)
class VaeganConfig:
    model: str = "vaegan"
    size: int = 64
    latent: int = 200
    channels: tuple[int, ...] = (16, 32, 32, 64, 64, 128, 256)  # encoder convs; the decoder mirrors
    hidden: tuple[int, ...] = (256, 256)  # linear widths between the convolutions and the latent
    disc_channels: tuple[int, ...] = (16, 32, 64, 128)
    disc_hidden: tuple[int, ...] = (256, 64)
    reconstruction: str = "bce"  # bce (as the method) or l1
    # The error loss.mouth sums over the mouth region. L1's best answer is the median pixel: where
    # the latent leaves some doubt whether the mouth is open, and most frames' mouths are nearly
    # closed, that is a closed mouth, whatever the latent says. L2's is the mean, which darkens the
    # mouth as the latent makes an opening more likely.
    mouth_error: str = "l1"
    # "source": the decoder also sees the source photo (features at every resolution, a flow that
    # warps it and a mask that blends the warp with painted pixels), so the latent only has to
    # carry expression and pose. "none" is the reproduced method's plain decoder.
    condition: str = "none"
    flow_range: float = 0.25  # "source": largest warp, in half-widths of the image
    # "source": how many of the first latent dimensions an animation moves (0: the whole latent).
    # With N > 0 the photo's latent changes only in the dimensions loss.motion ties to expression
    # and pose, so the decoder learns to render the motion from what those say.
    transfer_dims: int = 0
    loss: LossWeights = field(default_factory=LossWeights)
    train: TrainParams = field(default_factory=TrainParams)

    def __post_init__(self) -> None:
        problems = []
        if self.model != "vaegan":
            problems.append(f"model must be 'vaegan', got {self.model!r}")
        if self.size not in SIZES:
            problems.append(f"size must be one of {', '.join(map(str, SIZES))}, got {self.size!r}")
        if not isinstance(self.latent, int) or self.latent < 1:
            problems.append(f"latent must be a positive whole number, got {self.latent!r}")
        for name, values, count in (
            ("channels", self.channels, CONVS),
            ("hidden", self.hidden, 2),
            ("disc_channels", self.disc_channels, DISC_CONVS),
            ("disc_hidden", self.disc_hidden, 2),
        ):
            if len(values) != count or not all(isinstance(v, int) and v > 0 for v in values):
                problems.append(f"{name} must be {count} positive whole numbers, got {list(values)!r}")
        if self.condition not in CONDITIONS:
            problems.append(f"condition must be one of {', '.join(CONDITIONS)}, got {self.condition!r}")
        if not isinstance(self.flow_range, int | float) or not 0 < self.flow_range <= 1:
            problems.append(f"flow_range must be a number in (0, 1], got {self.flow_range!r}")
        if not isinstance(self.transfer_dims, int) or not 0 <= self.transfer_dims <= self.latent:
            problems.append(
                f"transfer_dims must be a whole number in [0, latent], got {self.transfer_dims!r}"
            )
        if self.transfer_dims and self.condition != "source":
            problems.append("transfer_dims needs condition: source (the photo keeps what the latent keeps)")
        if not isinstance(self.train.cross_identity, int | float) or not 0 <= self.train.cross_identity <= 1:
            problems.append(f"train.cross_identity must be in [0, 1], got {self.train.cross_identity!r}")
        if not isinstance(self.train.latent_noise, int | float) or not 0 <= self.train.latent_noise <= 1:
            problems.append(f"train.latent_noise must be in [0, 1], got {self.train.latent_noise!r}")
        if not isinstance(self.train.motion_scale, int | float) or not self.train.motion_scale > 0:
            problems.append(f"train.motion_scale must be a number > 0, got {self.train.motion_scale!r}")
        if self.mouth_error not in MOUTH_ERRORS:
            problems.append(f"mouth_error must be one of {', '.join(MOUTH_ERRORS)}, got {self.mouth_error!r}")
        if self.reconstruction not in RECONSTRUCTIONS:
            problems.append(f"reconstruction must be one of {', '.join(RECONSTRUCTIONS)}")
        for f in dataclasses.fields(self.loss):
            value = getattr(self.loss, f.name)
            if not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
                problems.append(f"loss.{f.name} must be a number >= 0, got {value!r}")
        if problems:
            raise ConfigError("invalid vaegan config: " + "; ".join(problems))

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.size, self.size


def down_layers(size: int) -> list[bool]:
    """Which of the 7 encoder convolutions halve the resolution, down to 4x4 at the last.

    The halvings are spread evenly over the layers, as early as possible: full-resolution
    layers are the costly ones on a CPU (at 64x64 the first layer halves already), and the
    decoder, mirroring this, runs only its last convolution at full resolution.
    """
    halvings = int(math.log2(size // 4))
    return [math.ceil((i + 1) * halvings / 7) > math.ceil(i * halvings / 7) for i in range(7)]


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(names)}")
    values = {}
    for key, value in data.items():
        if key == "loss":
            value = _build(LossWeights, value, f"{where}.loss")
        elif key == "train":
            value = _build(TrainParams, value, f"{where}.train")
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def config_from_dict(data: Any, source: str = "the stored config") -> VaeganConfig:
    return _build(VaeganConfig, data, f"vaegan config ({source})")


def config_to_dict(cfg: VaeganConfig) -> dict[str, Any]:
    """Plain data (lists, numbers, strings): what YAML writes and ``weights_only`` loading reads."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def load_config(name_or_path: str | Path) -> VaeganConfig:
    """A built-in config by name (``vaegan-64``, ``vaegan-demo`` …) or a YAML file."""
    text = str(name_or_path)
    path = _CONFIG_DIR / f"{text}.yaml" if text in builtin_configs() else Path(text).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"vaegan config {text} not found; give a YAML file or one of {', '.join(builtin_configs())}"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"vaegan config {path} cannot be read ({type(exc).__name__}: {exc})") from None
    return config_from_dict(data or {}, str(path if text not in builtin_configs() else text))


def is_vaegan_config(name_or_path: str | Path) -> bool:
    """Whether a ``--config`` names a VAE+GAN config (a built-in one or a YAML with ``model: vaegan``),
    so that ``animatica train`` picks the trainer by the config alone."""
    text = str(name_or_path)
    if text in builtin_configs():
        return True
    path = Path(text).expanduser()
    if not path.is_file() or path.suffix.lower() not in (".yaml", ".yml"):
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, Mapping) and data.get("model") == "vaegan"
