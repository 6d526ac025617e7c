"""``animatica image generate|inpaint|upscale`` and ``animatica models check`` as an operator runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.cli.test_cli import invoke


@pytest.fixture(autouse=True)
def restore_offline_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands set these for their process; give the test process its own values back."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        monkeypatch.setenv(name, "1")


def test_generate_reproduces_with_a_seed_and_records_the_recipe(tiny, tmp_path) -> None:
    lora = tiny["loras"] / "ink.safetensors"
    args = [
        "image",
        "generate",
        "--model",
        str(tiny["text2img-file"]),
        "--prompt",
        "a red fox",
        "--size",
        "128x72",
        "--steps",
        "2",
        "--seed",
        "11",
        "--lora",
        f"{lora}:0.7",
        "--scheduler",
        "euler",
    ]
    first = invoke(*args, "--output", str(tmp_path / "a.png"))
    assert first.exit_code == 0, first.output
    assert "seed 11" in first.stdout
    second = invoke(*args, "--output", str(tmp_path / "b.png"))
    assert second.exit_code == 0, second.output
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.size == (128, 72)
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert a.text["animatica:seed"] == "11" and a.text["animatica:loras"] == "ink.safetensors:0.7"
    without_lora = invoke(*args[:-4], "--scheduler", "euler", "--output", str(tmp_path / "c.png"))
    assert without_lora.exit_code == 0, without_lora.output
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "c.png") as c:
        assert not np.array_equal(np.asarray(a), np.asarray(c))


def draw(output: Path, command: str, *options: object) -> tuple[int, int]:
    """Run ``animatica image COMMAND OPTIONS --output OUTPUT``; the size of the picture it wrote."""
    result = invoke("image", command, *map(str, options), "--output", str(output))
    assert result.exit_code == 0, result.output
    with Image.open(output) as picture:
        return picture.size


def test_inpaint_and_upscale_commands(tiny, pictures, tmp_path) -> None:
    photo, mask, small = pictures["photo"], pictures["mask"], pictures["small"]
    inpainted = draw(
        tmp_path / "inpainted.png",
        "inpaint",
        *("--model", tiny["inpaint"], "--prompt", "a helmet", "--input", photo, "--mask", mask),
        *("--size", "64x64", "--steps", 2),
    )
    assert inpainted == (64, 64)
    enlarged = draw(
        tmp_path / "big.png", "upscale", "--model", tiny["upscale"], "--input", small, "--steps", 2
    )
    assert enlarged == (4 * 48, 4 * 40)  # 4x the input by default


@pytest.mark.slow
def test_a_missing_model_is_one_line_and_no_file(tmp_path, animatica_home) -> None:
    out = tmp_path / "x.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "animatica.cli",
            "image",
            "generate",
            "--prompt",
            "a cat",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={"ANIMATICA_HOME": str(animatica_home), "PATH": "/usr/bin:/bin"},
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "ANIMATICA_DIFFUSION_MODEL" in result.stderr and "Stable Diffusion" in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


def test_models_check_loads_each_configured_model(tiny, tmp_path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"garbage")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{}")
    settings = {
        "ANIMATICA_DIFFUSION_MODEL": str(tiny["text2img-file"]),
        "ANIMATICA_INPAINT_MODEL": str(broken),
        "ANIMATICA_UPSCALE_MODEL": str(tmp_path / "nowhere"),
        "ANIMATICA_CONTROLNET_MODELS": json.dumps({"face": str(tiny["controlnet-file"])}),
        "ANIMATICA_LORA_DIR": str(tiny["loras"]),
    }
    result = invoke("models", "check", settings=settings)
    assert result.exit_code == 1, result.output
    lines = {
        line.split()[1] if not line.startswith("not") else line.split()[2]: line
        for line in result.stdout.splitlines()
    }
    assert lines["diffusion"].startswith("OK") and "single file, native 64 px" in lines["diffusion"]
    assert lines["inpaint"].startswith("broken")
    assert lines["upscale"].startswith("missing")
    assert lines["controlnet:face"].startswith("OK")
    assert lines["lora_dir"].startswith("OK") and "ink.safetensors" in lines["lora_dir"]
    assert lines["vgg"].startswith("not configured") and "ANIMATICA_VGG_WEIGHTS" in lines["vgg"]
    settings.pop("ANIMATICA_INPAINT_MODEL")
    settings.pop("ANIMATICA_UPSCALE_MODEL")
    assert invoke("models", "check", settings=settings).exit_code == 0
