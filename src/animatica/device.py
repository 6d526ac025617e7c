"""Choosing the torch device from a user's ``--device`` (auto, cpu, cuda, cuda:N)."""

import torch

from animatica.errors import AnimaticaError


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU; a missing GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise AnimaticaError(f"unknown device '{device}'; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise AnimaticaError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return dev
