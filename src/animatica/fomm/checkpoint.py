"""Reading and writing checkpoints in the public first-order-model format.

A checkpoint is a ``torch.save`` dict with state dicts under ``generator`` and ``kp_detector``
(training checkpoints add ``discriminator``, the three optimizer states and ``epoch``; Animatica's
trainer also stores its ``config``). Files are read with ``weights_only=True``: a checkpoint from
the internet is data, and must not be able to run code when loaded.
"""

from pathlib import Path

import torch
from torch import nn

from animatica.errors import CheckpointError, ConfigError
from animatica.fomm import config as config_module
from animatica.fomm.networks import match_builtin
from animatica.state_dicts import fit_problems, strip_data_parallel

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
SUFFIXES = (".pth.tar", ".pth", ".pt", ".ckpt")
PUBLIC_HINT = (
    "FOMM checkpoints (vox-cpk.pth.tar, vox-adv-cpk.pth.tar, taichi-cpk.pth.tar, …) are published by the "
    "first-order-model authors; download one yourself and pass its path"
)


def _folders(checkpoints_dir: Path | None) -> list[Path]:
    """Where names are looked up, the caller's folder first: a checkpoint someone put there under a
    shipped name (``demo``) is the one they mean."""
    return [SHIPPED_DIR] if checkpoints_dir is None else [Path(checkpoints_dir), SHIPPED_DIR]


def shipped_names(checkpoints_dir: Path | None = None) -> list[str]:
    """Names usable as ``--checkpoint NAME``: shipped with Animatica or kept in ``checkpoints_dir``."""
    names = set()
    for folder in _folders(checkpoints_dir):
        if folder.is_dir():
            for path in folder.iterdir():
                for suffix in SUFFIXES:
                    if path.name.endswith(suffix):
                        names.add(path.name[: -len(suffix)])
    return sorted(names)


def resolve_checkpoint(name_or_path: str | Path, checkpoints_dir: Path | None = None) -> Path:
    """A path that exists, or a checkpoint name looked up among the shipped ones and in ``checkpoints_dir``.

    ``checkpoints_dir`` is the caller's own folder of named checkpoints (the command line passes
    ``Settings.checkpoints_dir``); without it, only paths and the shipped names resolve.
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1:  # a bare name: shipped or named checkpoints (a folder of that name aside)
        for folder in _folders(checkpoints_dir):
            for suffix in SUFFIXES:
                candidate = folder / f"{name_or_path}{suffix}"
                if candidate.is_file():
                    return candidate
    if path.exists():
        raise CheckpointError(f"checkpoint {path} is not a file")
    known = ", ".join(shipped_names(checkpoints_dir)) or "none"
    hint = PUBLIC_HINT if checkpoints_dir is None else f"{PUBLIC_HINT}, or copy it into {checkpoints_dir}"
    raise CheckpointError(f"checkpoint {name_or_path} not found (known names: {known}). {hint}")


def read_checkpoint(path: Path) -> dict:
    """The checkpoint's top-level dict, loaded on the CPU without executing any pickled code."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read (corrupt, truncated or not a PyTorch file): {reason}"
        ) from None
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(data).__name__}, not a dict of state dicts")
    missing = [key for key in ("generator", "kp_detector") if key not in data]
    if missing:
        found = ", ".join(map(str, data)) or "nothing"
        raise CheckpointError(f"checkpoint {path} has no {' or '.join(missing)} entry (it holds: {found})")
    return data


def load_state_strict(module: nn.Module, state: dict, what: str, source: Path | str) -> None:
    """Load ``state`` into ``module``; any missing, unexpected, non-tensor or mis-shaped key is an
    error naming them."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {source}: '{what}' is not a state dict")
    state = strip_data_parallel(state)
    problems = fit_problems(module, state, "checkpoint vs config")
    if problems:
        raise CheckpointError(
            f"checkpoint {source}: the {what} does not fit the configuration ({'; '.join(problems)}); "
            "pass the --config the checkpoint was trained with"
        )
    module.load_state_dict(state, strict=True)


def state_shapes(checkpoint: dict) -> dict[str, tuple[int, ...]]:
    """Shapes of the networks' tensors, keyed by network as ``networks.expected_shapes`` keys them."""
    shapes = {}
    for part in ("generator", "kp_detector", "discriminator"):
        state = checkpoint.get(part)
        if isinstance(state, dict):
            for key, value in strip_data_parallel(state).items():
                if isinstance(value, torch.Tensor):
                    shapes[f"{part}.{key}"] = tuple(value.shape)
    return shapes


def save_checkpoint(path: Path, entries: dict) -> None:
    """Write atomically: a crash while saving never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(entries, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def config_for_checkpoint(
    checkpoint: dict, path: Path, config: str | Path | None
) -> config_module.FommConfig:
    """The config named by the user, else the one stored in the checkpoint, else the built-in that fits."""
    if config is not None:
        return config_module.load_config(config)
    if isinstance(checkpoint.get("config"), dict):
        return config_module.config_from_dict(checkpoint["config"])
    matches = match_builtin(state_shapes(checkpoint))
    if not matches:
        raise ConfigError(
            f"checkpoint {path} fits none of the built-in configs "
            f"({', '.join(config_module.BUILTIN_CONFIGS)}); "
            "pass the YAML it was trained with as --config"
        )
    candidates = [config_module.load_config(name) for name in matches]

    def inference_settings(cfg: config_module.FommConfig) -> tuple:
        # The discriminator and training settings do not change animation.
        return (
            config_module.kp_detector_kwargs(cfg),
            config_module.generator_kwargs(cfg),
            config_module.frame_size(cfg),
        )

    first = inference_settings(candidates[0])
    if any(inference_settings(c) != first for c in candidates[1:]):
        raise ConfigError(
            f"checkpoint {path} fits several built-in configs with different model settings "
            f"({', '.join(matches)}); choose one with --config"
        )
    return candidates[0]
