"""The FOMM reference data lives in the repository, and nothing reads the full originals beside it.

A clone on its own must pass its tests, so the trimmed copy in ``tests/fomm/reference/`` is what
the tests read; ``refresh.py`` there rewrites it, by hand, from the full reference folder.
"""

import importlib.util
import json
import re
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REFRESH = REPO / "tests" / "fomm" / "reference" / "refresh.py"
# The by-hand scripts that copy trimmed reference numbers into the repository.
BY_HAND = {REFRESH, REPO / "tests" / "liveportrait" / "reference" / "trim.py"}
# Spelled in pieces so that this file does not match its own patterns.
_NAME = "sha" + "red"
_OUTSIDE = re.compile(
    "|".join(
        [
            rf"\.\./{_NAME}\b",  # "../<name>/…" in a path string
            rf"/\s*[\"']{_NAME}[\"']",  # Path(...) / "<name>"
            rf"[\"']{_NAME}/",  # "<name>/reference/…"
            rf"join\([^)]*[\"']{_NAME}[\"']",  # os.path.join(..., "<name>")
        ]
    )
)


def _refresh_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fomm_reference_refresh", REFRESH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _reads_outside(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if _OUTSIDE.search(line)]


def test_no_code_reads_the_reference_folder_beside_the_repository() -> None:
    """Only the by-hand copying scripts may look beside the checkout; tests and the package never do."""
    files = [REPO / "Makefile", REPO / "pyproject.toml"]
    for root in ("src", "tests", "bench"):
        files += sorted((REPO / root).rglob("*.py"))
    offenders = {
        str(path.relative_to(REPO)): lines
        for path in files
        if path.is_file() and path not in BY_HAND and (lines := _reads_outside(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "line",
    [
        f'SHARED = REPO.parent / "{_NAME}" / "reference" / "fomm"',
        f"path = Path(__file__).resolve().parents[3] / '{_NAME}'",
        f'np.load("../{_NAME}/reference/fomm/vox256_parity.npz")',
        f'open("{_NAME}/reference/fomm/README.md")',
        f'os.path.join(root, "..", "{_NAME}", "reference")',
    ],
)
def test_the_scan_finds_paths_beside_the_repository(line: str) -> None:
    assert _reads_outside(f"x = 1\n{line}\n") == [line]


def test_the_scan_leaves_other_uses_of_the_word_alone() -> None:
    text = f'"""A {_NAME} jacobian map."""\nsingle_{_NAME} = True\nlog.info("{_NAME} memory")\n'
    assert _reads_outside(text) == []


def test_the_kept_data_is_what_refresh_writes(fomm_reference: Path) -> None:
    refresh = _refresh_module()
    assert fomm_reference.resolve().is_relative_to(REPO)
    with zipfile.ZipFile(fomm_reference / refresh.PARITY) as archive:
        assert {info.date_time for info in archive.infolist()} == {refresh.ZIP_DATE}
    with np.load(fomm_reference / refresh.PARITY) as data:
        keys = set(data.files)
        assert all(data[key].dtype == np.float32 for key in keys)
        assert data["inputs/driving"].shape[2] == refresh.FRAMES
    assert {key.split("/")[0] for key in keys} == {"inputs", refresh.VARIANT}
    frames = {key.split("/")[1] for key in keys if key.count("/") == 2}
    assert frames == {f"t{t}" for t in range(refresh.FRAMES)}
    script = (fomm_reference / refresh.SCRIPT).read_text()
    assert script.startswith("#!") and refresh.SCRIPT_HEADER in script
    assert set(json.loads((fomm_reference / refresh.SHAPES).read_text())) >= {"generator", "kp_detector"}


def _write_originals(folder: Path) -> dict[str, np.ndarray]:
    """A small stand-in for the full reference folder: four frames, both variants."""
    rng = np.random.default_rng(3)
    arrays = {
        "inputs/source": (rng.integers(0, 256, (1, 3, 8, 8)) / 255).astype(np.float32),
        "inputs/driving": (rng.integers(0, 256, (1, 3, 4, 8, 8)) / 255).astype(np.float32),
    }
    for variant in ("align_true", "align_false"):
        arrays[f"{variant}/kp_source_value"] = rng.uniform(-1, 1, (1, 10, 2)).astype(np.float32)
        for t in range(4):
            arrays[f"{variant}/t{t}/kp_driving_value"] = rng.uniform(-1, 1, (1, 10, 2)).astype(np.float32)
            arrays[f"{variant}/t{t}/reconstruction_prediction"] = rng.random((1, 3, 8, 8), dtype=np.float32)
    folder.mkdir()
    np.savez_compressed(folder / "vox256_parity.npz", **arrays)
    (folder / "vox256_state_shapes.json").write_text('{"generator": {"a.weight": [2, 3]}}\n')
    (folder / "make_named_checkpoint.py").write_text('#!/usr/bin/env python3\n"""Doc."""\nprint("named")\n')
    return arrays


def test_refresh_keeps_one_variant_on_two_frames_and_copies_the_rest(tmp_path: Path) -> None:
    refresh = _refresh_module()
    originals = _write_originals(tmp_path / "originals")
    out = tmp_path / "kept"
    assert refresh.main(["--shared", str(tmp_path / "originals"), "--out", str(out)]) == 0

    with np.load(out / "vox256_parity.npz") as data:
        kept = {key: data[key] for key in data.files}
    assert set(kept) == {
        "inputs/source",
        "inputs/driving",
        "align_true/kp_source_value",
        "align_true/t0/kp_driving_value",
        "align_true/t0/reconstruction_prediction",
        "align_true/t1/kp_driving_value",
        "align_true/t1/reconstruction_prediction",
    }
    assert np.array_equal(kept["inputs/driving"], originals["inputs/driving"][:, :, :2])
    for key, value in kept.items():
        if key != "inputs/driving":
            assert value.dtype == np.float32 and np.array_equal(value, originals[key]), key

    shapes = "vox256_state_shapes.json"
    assert (out / shapes).read_bytes() == (tmp_path / "originals" / shapes).read_bytes()
    script = (out / "make_named_checkpoint.py").read_text()
    original = (tmp_path / "originals" / "make_named_checkpoint.py").read_text()
    assert script.startswith("#!/usr/bin/env python3\n" + refresh.SCRIPT_HEADER)
    assert script.replace(refresh.SCRIPT_HEADER, "", 1) == original

    first = (out / "vox256_parity.npz").read_bytes()
    assert refresh.main(["--shared", str(tmp_path / "originals"), "--out", str(out)]) == 0
    assert (out / "vox256_parity.npz").read_bytes() == first
    with zipfile.ZipFile(out / "vox256_parity.npz") as archive:
        assert {info.date_time for info in archive.infolist()} == {refresh.ZIP_DATE}


def test_refresh_says_what_is_missing_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    refresh = _refresh_module()
    (tmp_path / "originals").mkdir()
    (tmp_path / "originals" / "vox256_state_shapes.json").write_text("{}")
    assert refresh.main(["--shared", str(tmp_path / "originals"), "--out", str(tmp_path / "kept")]) == 2
    error = capsys.readouterr().err
    assert "vox256_parity.npz" in error and "make_named_checkpoint.py" in error
    assert "vox256_state_shapes.json" not in error.split("lacks", 1)[1]
    assert not (tmp_path / "kept").exists()


def test_refresh_refuses_rounded_or_short_originals(tmp_path: Path) -> None:
    refresh = _refresh_module()
    arrays = _write_originals(tmp_path / "originals")
    rounded = {**arrays, "align_true/t1/reconstruction_prediction": np.zeros((1, 3, 8, 8), np.float16)}
    with pytest.raises(ValueError, match="t1/reconstruction_prediction is float16"):
        refresh.trimmed_arrays(rounded)
    short = {**arrays, "inputs/driving": arrays["inputs/driving"][:, :, :1]}
    with pytest.raises(ValueError, match="inputs/driving has shape"):
        refresh.trimmed_arrays(short)
