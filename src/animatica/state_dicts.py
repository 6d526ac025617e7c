"""Checking a state dict read from a file against the network it is meant for.

Loaders refuse a file that does not fit rather than half-load it, and say exactly what does not fit,
so that a user holding weights of another model variant learns that from the first error.
"""

import torch
from torch import nn


def strip_data_parallel(state: dict) -> dict:
    """Weights saved from a ``DataParallel`` wrapper prefix every key with ``module.``; networks do not."""
    if state and all(str(key).startswith("module.") for key in state):
        return {key[len("module.") :]: value for key, value in state.items()}
    return state


def listing(keys: list[str], limit: int = 5) -> str:
    """The first ``limit`` keys and how many more: an error stays one readable line."""
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def fit_problems(module: nn.Module, state: dict, mismatch_label: str) -> list[str]:
    """What keeps ``state`` from loading strictly into ``module``: missing, unexpected, non-tensor and
    mis-shaped keys, one phrase each (empty when it fits). ``mismatch_label`` says which side of a
    shape pair is which, e.g. ``"file vs network"``."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [str(key) for key in state if key not in expected]
    not_tensors = [key for key in expected if key in state and not isinstance(state[key], torch.Tensor)]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(value.shape)}"
        for key, value in expected.items()
        if isinstance(state.get(key), torch.Tensor) and state[key].shape != value.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {listing(unexpected)}")
    if not_tensors:
        problems.append(f"not tensors: {listing(not_tensors)}")
    if mismatched:
        problems.append(f"shape mismatches ({mismatch_label}): {listing(mismatched)}")
    return problems
