"""Fixtures of the LivePortrait tests: the reference's numbers and the networks loaded from the
name-derived weights (``named_lp_dir``, a session fixture of the root conftest, shared with the
engine and service tests)."""

from pathlib import Path

import numpy as np
import pytest

PARITY_PATH = Path(__file__).resolve().parent / "reference" / "parity.npz"


@pytest.fixture(scope="session")
def lp_parity() -> dict[str, np.ndarray]:
    """The reference numbers (``reference/parity.npz``, written by ``reference/trim.py``).

    ``inputs/source`` (1, 3, 256, 256) and ``inputs/driving`` (4, 3, 256, 256) are given back as
    float32 in [0, 1], exactly the reference's inputs; every other array is as stored (``*/out_u8``
    are the reference's truncated 8-bit frames).
    """
    if not PARITY_PATH.is_file():
        pytest.fail(f"LivePortrait reference data not found at {PARITY_PATH}")
    with np.load(PARITY_PATH) as data:
        arrays = {key: data[key] for key in data.files}
    for key in ("inputs/source", "inputs/driving"):
        arrays[key] = arrays[key].astype(np.float32) / np.float32(255)
    return arrays


@pytest.fixture(scope="session")
def named_lp_networks(named_lp_dir: Path):
    """The seven networks loaded from ``named_lp_dir`` (CPU, eval mode), shared by the session."""
    from animatica.liveportrait.checkpoint import load_networks

    return load_networks(named_lp_dir)
