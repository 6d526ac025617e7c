"""VAE+GAN checkpoints: one ``torch.save`` dict, read with ``weights_only=True``.

Layout (format ``animatica.vaegan``, version 2)::

    format       "animatica.vaegan"
    version      2
    config       the VaeganConfig as plain data (``config.config_to_dict``): no YAML needed to animate
    encoder      state dict
    decoder      state dict
    step         optimisation steps the weights have seen
    # training checkpoints only:
    discriminator, optimizer_vae, optimizer_discriminator   state dicts
    trainer      {epoch, batch, step, seed, batch_size, precision, noise_rng, guard, watch}

An inference checkpoint (``export_inference``, the shipped ``vaegan-demo``) keeps the first six.
Version 2 added the conditioned decoder (config ``condition``, ``flow_range``,
``train.cross_identity``); version 1 files, whose configs lack those keys, read as plain decoders.
Loading is strict: a missing, unexpected or mis-shaped tensor is an error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from animatica.errors import CheckpointError
from animatica.fomm.checkpoint import save_checkpoint
from animatica.state_dicts import fit_problems, strip_data_parallel
from animatica.vaegan.config import VaeganConfig, config_from_dict, config_to_dict

FORMAT = "animatica.vaegan"
VERSION = 2
READABLE = (1, 2)
SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt")
INFERENCE_KEYS = ("format", "version", "config", "encoder", "decoder", "step")


def _folders(checkpoints_dir: Path | None) -> list[Path]:
    return [SHIPPED_DIR] if checkpoints_dir is None else [Path(checkpoints_dir), SHIPPED_DIR]


def shipped_names(checkpoints_dir: Path | None = None) -> list[str]:
    names = set()
    for folder in _folders(checkpoints_dir):
        if folder.is_dir():
            for path in folder.iterdir():
                names.update(path.name[: -len(s)] for s in SUFFIXES if path.name.endswith(s))
    return sorted(names)


def resolve_checkpoint(name_or_path: str | Path, checkpoints_dir: Path | None = None) -> Path:
    """A file path, or a bare name looked up in ``checkpoints_dir`` first, then among the shipped ones."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if len(path.parts) == 1:
        for folder in _folders(checkpoints_dir):
            for suffix in SUFFIXES:
                candidate = folder / f"{name_or_path}{suffix}"
                if candidate.is_file():
                    return candidate
    known = ", ".join(shipped_names(checkpoints_dir)) or "none"
    raise CheckpointError(
        f"vaegan checkpoint {name_or_path} not found (known names: {known}); "
        "train one with `animatica train --config vaegan-64 ...`"
    )


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict, loaded without running pickled code; ``CheckpointError`` if it is not ours."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} cannot be read (corrupt or not a PyTorch file): {reason}"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        what = (
            "a FOMM checkpoint (use --engine fomm)"
            if isinstance(data, dict) and "generator" in data
            else None
        )
        raise CheckpointError(
            f"checkpoint {path} is not a vaegan checkpoint{f'; it is {what}' if what else ''}"
        )
    if data.get("version") not in READABLE:
        raise CheckpointError(
            f"checkpoint {path} has vaegan format version {data.get('version')!r}; this reads "
            f"{', '.join(map(str, READABLE))}"
        )
    missing = [k for k in ("config", "encoder", "decoder") if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} has no {', '.join(missing)} entry")
    return data


def checkpoint_config(data: dict[str, Any], path: Path) -> VaeganConfig:
    if not isinstance(data.get("config"), dict):
        raise CheckpointError(f"checkpoint {path}: the stored config is not a mapping")
    return config_from_dict(data["config"], str(path))


def load_state_strict(module: nn.Module, state: Any, what: str, source: Path | str) -> None:
    """Load ``state`` into ``module``; any missing, unexpected, non-tensor or mis-shaped key is an
    error naming them."""
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {source}: '{what}' is not a state dict")
    state = strip_data_parallel(state)
    problems = fit_problems(module, state, "file vs network")
    if problems:
        raise CheckpointError(
            f"checkpoint {source}: the {what} does not fit its config ({'; '.join(problems)})"
        )
    module.load_state_dict(state, strict=True)


def inference_entries(cfg: VaeganConfig, encoder: nn.Module, decoder: nn.Module, step: int) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "config": config_to_dict(cfg),
        "encoder": encoder.state_dict(),
        "decoder": decoder.state_dict(),
        "step": int(step),
    }


def export_inference(checkpoint: Path, out: Path) -> Path:
    """Keep what animation needs (encoder, decoder, config), e.g. to ship a model."""
    data = read_checkpoint(Path(checkpoint))
    save_checkpoint(Path(out), {k: data[k] for k in INFERENCE_KEYS if k in data})
    return Path(out)


def is_vaegan_checkpoint(name_or_path: str | Path, checkpoints_dir: Path | None = None) -> bool:
    """Whether a ``--checkpoint`` is a VAE+GAN checkpoint, so ``animatica train`` can resume it
    without being told which model it is."""
    try:
        read_checkpoint(resolve_checkpoint(name_or_path, checkpoints_dir))
    except CheckpointError:
        return False
    return True
