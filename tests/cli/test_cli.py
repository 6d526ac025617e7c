"""The ``animatica`` command as a user runs it: exit codes, one-line errors, no partial output.

Each command family runs at least once in a process of its own, as a user starts it (exit code,
stdout, exactly one line on stderr). Where a test checks what a command does rather than how the
process ends, it runs the same command in this process (``invoke``), which saves the seconds of a
fresh interpreter importing torch.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import Result
from tests.conftest import TINY_FOMM_CONFIG
from typer.testing import CliRunner


def run(*args: str, home: Path, settings: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {"ANIMATICA_HOME": str(home), "PATH": "/usr/bin:/bin", **(settings or {})}
    return subprocess.run(
        [sys.executable, "-m", "animatica.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def invoke(*args: str, settings: dict[str, str] | None = None) -> Result:
    """The command in this process, with ``settings`` as environment variables on top of the test's
    own ``ANIMATICA_HOME``; the cached settings are dropped before and after so each run reads them."""
    from animatica.cli import app
    from animatica.settings import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=settings)
    finally:
        get_settings.cache_clear()


def assert_one_line_error_in_process(result: Result, *fragments: str) -> None:
    """``assert_one_line_error`` for a run in this process: exit code 2 and one line on stderr,
    which only the command's own error handling writes (an escaped exception would be exit code 1)."""
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("animatica: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("animatica: error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_animate_writes_video(tiny_fomm_checkpoint, test_image, test_video, tmp_path, animatica_home) -> None:
    out = tmp_path / "out.mp4"
    proc = run("animate", "-s", str(test_image), "-d", str(test_video), "-o", str(out),
               "--checkpoint", str(tiny_fomm_checkpoint), home=animatica_home)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "12 frames" in proc.stdout and "with audio" in proc.stdout
    assert out.stat().st_size > 0


def test_corrupt_driving_video(tiny_fomm_checkpoint, test_image, tmp_path, animatica_home) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    out = tmp_path / "out.mp4"
    proc = run("animate", "-s", str(test_image), "-d", str(bad), "-o", str(out),
               "--checkpoint", str(tiny_fomm_checkpoint), home=animatica_home)  # fmt: skip
    assert_one_line_error(proc, "clip.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "source.png"]


def test_missing_checkpoint_says_what_to_get(test_image, test_video, tmp_path) -> None:
    result = invoke("animate", "-s", str(test_image), "-d", str(test_video), "-o", str(tmp_path / "o.mp4"),
                    "--checkpoint", str(tmp_path / "vox-cpk.pth.tar"))  # fmt: skip
    assert_one_line_error_in_process(result, "not found", "vox-cpk.pth.tar")


def test_animate_hands_the_settings_limits_and_checkpoint_folder_down(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path, animatica_home
) -> None:
    (animatica_home / "checkpoints").mkdir()
    shutil.copy(tiny_fomm_checkpoint, animatica_home / "checkpoints" / "mine.pth.tar")
    out = tmp_path / "out.mp4"

    def animate_with(settings: dict[str, str]) -> Result:
        return invoke("animate", "-s", str(test_image), "-d", str(test_video), "-o", str(out),
                      "--checkpoint", "mine", settings=settings)  # fmt: skip

    too_long = animate_with({"ANIMATICA_MAX_VIDEO_FRAMES": "11"})
    assert_one_line_error_in_process(too_long, "12 frames, more than the limit of 11")
    assert_one_line_error_in_process(
        animate_with({"ANIMATICA_MAX_IMAGE_PIXELS": "11999"}), "is larger than the limit of 11,999 pixels"
    )
    assert not out.exists()
    result = animate_with({"ANIMATICA_MAX_VIDEO_FRAMES": "12"})
    assert result.exit_code == 0, result.output
    result = invoke("checkpoint", "inspect", "mine", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == str(animatica_home / "checkpoints" / "mine.pth.tar")


def test_unwritable_output(tiny_fomm_checkpoint, test_image, test_video, tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = invoke("animate", "-s", str(test_image), "-d", str(test_video), "-o", str(blocker / "out.mp4"),
                    "--checkpoint", str(tiny_fomm_checkpoint))  # fmt: skip
    assert_one_line_error_in_process(result)


def test_checkpoint_inspect_json(tiny_fomm_checkpoint, animatica_home) -> None:
    proc = run("checkpoint", "inspect", str(tiny_fomm_checkpoint), "--json", home=animatica_home)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["num_kp"] == 5 and report["has_config"] is True
    assert report["fits_builtin_configs"] == []


@pytest.mark.slow
def test_bench_prints_one_json_line(tmp_path, animatica_home) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_FOMM_CONFIG))
    proc = run("bench", "--engine", "fomm", "--size", "64", "--frames", "4", "--batch-size", "2",
               "--config", str(config), "--json", home=animatica_home,
               settings={"ANIMATICA_TORCH_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["engine"] == "fomm" and result["size"] == 64 and result["device"] == "cpu"
    assert result["ms_per_frame"] > 0 and result["precision"] in ("fp32", "bf16")
    assert result["threads"] == 1  # the command applies the configured torch threads


def test_output_ending_in_slash_writes_png_frames(
    tiny_fomm_checkpoint, test_image, test_video, tmp_path, animatica_home
) -> None:
    """A trailing slash asks for frames even when the folder name has a dot."""
    out = tmp_path / "take.2"
    result = invoke("animate", "-s", str(test_image), "-d", str(test_video), "-o", f"{out}/",
                    "--checkpoint", str(tiny_fomm_checkpoint))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir())[:2] == ["00000.png", "00001.png"]
    assert len(list(out.iterdir())) == 12


@pytest.mark.slow
def test_synth_train_evaluate_from_the_command_line(tmp_path, animatica_home) -> None:
    data, runs = tmp_path / "data", tmp_path / "runs"
    result = invoke("data", "synth", "--out", str(data), "--videos", "2", "--test-videos", "1",
                    "--size", "32", "--frames", "6")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (data / "train").is_dir() and (data / "test").is_dir()
    config = tmp_path / "tiny.yaml"
    from animatica.fomm.config import config_to_dict, load_config

    train_params = config_to_dict(load_config("vox-256"))["train_params"]
    tiny = {**TINY_FOMM_CONFIG, "dataset_params": {"frame_shape": [32, 32, 3]}, "train_params": train_params}
    config.write_text(yaml.safe_dump(tiny))
    result = invoke("train", "--data", str(data), "--config", str(config), "--steps", "2",
                    "--batch-size", "2", "--out-dir", str(runs))  # fmt: skip
    assert result.exit_code == 0, result.output
    checkpoint = result.stdout.split()[-1]
    result = invoke("evaluate", "--checkpoint", checkpoint, "--data", str(data), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["model"]["l1"] > 0 and summary["baseline"]["l1"] > 0
    # the refusal as a user sees it: a process of its own, exit code 2, one line on stderr
    proc = run("train", "--data", str(tmp_path / "nothing"), "--config", str(config), home=animatica_home)
    assert_one_line_error(proc)
