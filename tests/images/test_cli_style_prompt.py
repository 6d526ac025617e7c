"""``animatica image style`` and ``animatica image prompt`` as a user runs them (in this process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tests.cli.test_cli import assert_one_line_error_in_process, invoke
from tests.conftest import write_mp4
from tests.images.tiny_text_models import EOS, build_scripted_llm
from tests.vgg_weights import torchvision_vgg_state

from animatica.images import prompts


def _pictures(tmp_path: Path) -> tuple[Path, Path]:
    yy, xx = np.mgrid[0:128, 0:160]
    content = np.stack([xx * 1.5, yy * 2, 255 - xx], axis=-1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(tmp_path / "content.png")
    style = np.zeros((40, 40, 3), np.uint8)
    style[::4] = (250, 40, 20)
    Image.fromarray(style).save(tmp_path / "style.png")
    return tmp_path / "content.png", tmp_path / "style.png"


def test_style_writes_a_picture_at_the_asked_size_from_the_configured_weights(tmp_path: Path) -> None:
    content, style = _pictures(tmp_path)
    torch.save(torchvision_vgg_state("vgg16", seed=0), tmp_path / "vgg16.pth")
    out = tmp_path / "out" / "styled.png"
    result = invoke(
        *("image", "style", "--content", str(content), "--style", str(style), "--output", str(out)),
        *("--steps", "2", "--size", "80", "--style-weight", "1e5", "--device", "cpu", "--quiet"),
        settings={"ANIMATICA_VGG_WEIGHTS": str(tmp_path / "vgg16.pth")},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"wrote {out}" in result.stdout
    with Image.open(out) as written:
        assert written.size == (80, 64)  # content's aspect, longer side --size
        assert written.text["animatica:operation"] == "style"


def test_style_without_weights_says_what_to_configure(tmp_path: Path) -> None:
    content, style = _pictures(tmp_path)
    out = tmp_path / "styled.png"
    result = invoke("image", "style", "--content", str(content), "--style", str(style), "--output", str(out))
    assert_one_line_error_in_process(result, "ANIMATICA_VGG_WEIGHTS")
    assert not out.exists()
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    result = invoke(
        *("image", "style", "--content", str(content), "--style", str(style), "--output", str(out)),
        *("--vgg-weights", str(tmp_path / "bad.pth"), "--steps", "1"),
    )
    assert_one_line_error_in_process(result, "neither a torchvision VGG16 nor VGG19")
    assert not out.exists()


def test_prompt_prints_the_template_prompt_and_styles_it(tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4")
    result = invoke(
        *("image", "prompt", "--video", str(video), "--title", "Harbour at night", "--kind", "cover"),
        *("--style", "watercolor"),
    )
    assert result.exit_code == 0, (result.output, result.exception)
    expected, negative = prompts.styled_prompt(
        prompts.template_prompt(title="Harbour at night", kind="cover"), prompts.BASE_NEGATIVE, "watercolor"
    )
    assert result.stdout == expected + "\n"
    assert f"negative: {negative}" in result.stderr
    assert "no captioning model configured" in result.stderr
    bad = invoke("image", "prompt", "--title", "x", "--kind", "poster")
    assert_one_line_error_in_process(bad, "unknown picture kind 'poster'")


def test_prompt_uses_the_configured_language_model(tmp_path: Path) -> None:
    llm = build_scripted_llm(
        tmp_path / "llm", "misty", {"misty": "harbour", "harbour": "lights", "lights": EOS}
    )
    result = invoke("image", "prompt", "--title", "Harbour", settings={"ANIMATICA_PROMPT_LLM": str(llm)})
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout == "misty harbour lights\n"
    assert "from the language model's rewrite" in result.stderr
