"""Choosing the torch device (``--device`` auto, cpu, cuda, cuda:N) and the arithmetic (``--precision``)."""

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


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def precision_name(dtype: torch.dtype) -> str:
    """The ``--precision`` value that means ``dtype`` (as reports and checkpoints record it)."""
    return next(name for name, value in PRECISIONS.items() if value == dtype)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto`` picks bf16 only where it is faster than fp32 (CUDA with bf16, CPUs with bf16 units)."""
    if precision in PRECISIONS:
        return PRECISIONS[precision]
    if precision != "auto":
        raise AnimaticaError(f"unknown precision '{precision}'; use auto, fp32 or bf16")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    from animatica.fomm.fast import bf16_is_fast

    return torch.bfloat16 if bf16_is_fast() else torch.float32


def threads_per_job(configured: int, jobs_at_once: int) -> int:
    """Torch threads for one job: ``configured`` when set, else the cores shared evenly between the jobs
    that run at the same time (oversubscribed cores make every job slower, not just the extra one)."""
    if configured > 0:
        return configured
    import os

    return max(1, (os.cpu_count() or 1) // max(1, jobs_at_once))


def use_threads(count: int) -> None:
    """The one place the process's torch thread count is set (at start-up of a CLI command, an
    animation process or a worker process); library code never changes it."""
    if count > 0 and torch.get_num_threads() != count:
        torch.set_num_threads(count)
