"""Fixtures shared by the whole suite."""

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_FOMM = REPO.parent / "shared" / "reference" / "fomm"


@pytest.fixture(autouse=True)
def animatica_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own ANIMATICA_HOME, so nothing touches the user's real data folder."""
    from animatica.settings import get_settings

    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("ANIMATICA_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_fomm() -> Path:
    """The FOMM reference data that ships beside every checkout (../shared/reference/fomm)."""
    if not (SHARED_FOMM / "vox256_parity.npz").is_file():
        pytest.fail(
            f"FOMM reference data not found at {SHARED_FOMM}; the checkout must have ../shared beside it"
        )
    return SHARED_FOMM


@pytest.fixture(scope="session")
def named_checkpoint(shared_fomm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The vox-256 checkpoint whose weights derive from key names (the reference's parity weights)."""
    out = tmp_path_factory.mktemp("ckpt") / "named.pth.tar"
    argv = sys.argv
    try:
        sys.argv = ["make_named_checkpoint.py", str(out)]
        runpy.run_path(str(shared_fomm / "make_named_checkpoint.py"), run_name="__main__")
    finally:
        sys.argv = argv
    return out
