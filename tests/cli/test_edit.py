"""``animatica edit``: one photo in, the same photo with the head turned out; refusals are one line.

The out-of-range refusal runs the command as a user does, in a process of its own (exit code, one
line on stderr). The refusal for missing weights checks the same in this process (what it names is
the point there, not how the process ends). The real edit also runs in this process, in float32 on
the CPU like the other LivePortrait tests, so it renders with the networks the session has already
loaded rather than loading 130 M weights again in a fresh interpreter.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from animatica.cli import app


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {"ANIMATICA_HOME": str(home), "PATH": "/usr/bin:/bin", "ANIMATICA_TORCH_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "animatica.cli", "edit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("animatica: error: ")
    return lines[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_an_edit_out_of_range_is_refused_before_anything_loads(
    photo: Path, tmp_path: Path, animatica_home: Path
) -> None:
    out = tmp_path / "edited.png"
    line = one_line_error(
        run("--source", str(photo), "--output", str(out), "--yaw", "50", home=animatica_home)
    )
    assert "yaw must be between -30 and 30 degrees" in line
    line = one_line_error(
        run("--source", str(photo), "--output", str(out), "--eyes", "2", home=animatica_home)
    )
    assert "eyes must be an opening ratio between 0 and 0.8" in line
    assert not out.exists()


def test_without_weights_the_error_names_the_missing_files_and_where_to_get_them(
    photo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "edited.png"
    empty = tmp_path / "weights"
    (empty / "base_models").mkdir(parents=True)
    result = CliRunner().invoke(app, ["edit", "-s", str(photo), "-o", str(out), "--checkpoint", str(empty)])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("animatica: error: "), result.stderr
    line = lines[0]
    assert "appearance_feature_extractor.pth" in line and "stitching_retargeting_module.pth" in line
    assert "KwaiVGI/LivePortrait" in line
    assert not out.exists()


@pytest.mark.slow
def test_edit_turns_the_head_and_gives_the_whole_photo_back(
    photo: Path, named_lp_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "edited.png"
    result = CliRunner().invoke(
        app,
        [
            "edit", "-s", str(photo), "-o", str(out), "--checkpoint", str(named_lp_dir),
            "--yaw", "12", "--eyes", "0.1", "--device", "cpu", "--precision", "fp32",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {out}")
    original = np.asarray(Image.open(photo).convert("RGB"))
    with Image.open(out) as picture:
        assert picture.format == "PNG"
        edited = np.asarray(picture.convert("RGB"))
    assert edited.shape == original.shape
    changed = np.any(edited != original, axis=2)
    assert changed[100:170, 190:260].mean() > 0.9, "the face is the rendered one"
    assert not changed[260:, :].any() and not changed[:, 360:].any(), "away from the face nothing changes"
