"""What a checkpoint file holds, for ``animatica checkpoint inspect``."""

from pathlib import Path

import torch

from animatica.fomm.checkpoint import read_checkpoint, resolve_checkpoint, state_shapes
from animatica.fomm.networks import match_builtin

# State-dict entries that are buffers, not trained parameters: batch-norm statistics, the fixed
# anti-aliasing kernels and spectral norm's power-iteration vectors.
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked", "weight_u", "weight_v")


def _is_buffer(key: str) -> bool:
    return key.endswith(_BUFFERS) or key == "down.weight" or key.endswith(".down.weight")


def _parameters(state: object) -> int:
    if not isinstance(state, dict):
        return 0
    return sum(v.numel() for k, v in state.items() if isinstance(v, torch.Tensor) and not _is_buffer(k))


def inspect_checkpoint(name_or_path: str | Path, checkpoints_dir: Path | None = None) -> dict[str, object]:
    """What the checkpoint holds; a bare name is looked up as ``resolve_checkpoint`` does."""
    path = resolve_checkpoint(name_or_path, checkpoints_dir)
    data = read_checkpoint(path)
    networks = {
        part: _parameters(data[part])
        for part in ("kp_detector", "generator", "discriminator")
        if isinstance(data.get(part), dict)
    }
    report: dict[str, object] = {
        "path": str(path),
        "size_mb": round(path.stat().st_size / 2**20, 1),
        "entries": sorted(map(str, data)),
        "parameters": networks,
        "epoch": data.get("epoch"),
        "has_config": isinstance(data.get("config"), dict),
        "optimizer_states": sorted(k for k in map(str, data) if k.startswith("optimizer")),
        "fits_builtin_configs": match_builtin(state_shapes(data)),
    }
    kp = data["kp_detector"]
    if isinstance(kp, dict) and isinstance(kp.get("kp.weight"), torch.Tensor):
        report["num_kp"] = int(kp["kp.weight"].shape[0])
    return report
