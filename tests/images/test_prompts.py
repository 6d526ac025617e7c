"""The prompt module: template, style presets, frame sampling, captioning and the language-model rewrite
on tiny models built here (a random BLIP, and a GPT-2 scripted to give known answers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.conftest import write_mp4
from tests.images.tiny_text_models import EOS, build_scripted_llm, build_tiny_captioner

from animatica.errors import MediaError
from animatica.images import prompts
from animatica.images.errors import ImageModelMissing, ImageRequestError

GOOD_ANSWER = {"misty": "castle", "castle": "at", "at": "dawn", "dawn": EOS}


def test_template_fills_every_part_in_order_and_bounds_lengths() -> None:
    prompt = prompts.template_prompt(
        ["a dog running on the beach.", "There is a dog running on the beach", "a red kite in the sky"],
        title="  Summer   at the sea ",
        description="Our trip to the coast. We also went hiking!",
        kind="thumbnail",
    )
    thumb = prompts.KINDS["thumbnail"]
    assert prompt == (
        f"{thumb.framing}, Summer at the sea, Our trip to the coast, a dog running on the beach, "
        f"a red kite in the sky, {thumb.finish}"
    )
    long = prompts.template_prompt(["word " * 50], title="t " * 40, description="d " * 60, kind="avatar")
    words = long.replace(",", " ").split()
    assert (words.count("t"), words.count("d"), words.count("word")) == (12, 25, 20)
    assert prompts.template_prompt(kind="portrait").startswith("portrait of one person facing the camera")
    with pytest.raises(ImageRequestError, match="unknown picture kind 'poster'"):
        prompts.template_prompt(kind="poster")


def test_captions_are_cleaned_of_stock_openings_and_duplicates() -> None:
    assert prompts.clean_captions(
        [
            "a man riding a horse.",
            "there is a man riding a horse",
            "",
            "  A photo of a cat  ",
            "arafed man on a bike",
        ]
    ) == ["a man riding a horse", "a cat", "man on a bike"]


@pytest.mark.parametrize("name", sorted(prompts.STYLE_PRESETS))
def test_each_style_preset_appends_its_phrases_once(name: str) -> None:
    preset = prompts.STYLE_PRESETS[name]
    prompt, negative = prompts.styled_prompt("a castle on a hill", "ugly", name)
    assert prompt == f"a castle on a hill, {preset.modifiers}"
    assert negative == f"ugly, {preset.negative}"
    assert prompts.styled_prompt("castle, Sharp Focus", "", "photo")[0].lower().count("sharp focus") == 1
    assert prompts.styled_prompt(prompt, negative, name) == (prompt, negative)
    modifiers = {p.strip() for p in preset.modifiers.split(",")}
    assert not modifiers & {p.strip() for p in preset.negative.split(",")}


def test_style_names_are_forgiving_and_unknown_ones_refused() -> None:
    assert prompts.style_preset("Oil-Painting") is prompts.STYLE_PRESETS["oil painting"]
    assert prompts.style_preset("pixel_art") is prompts.STYLE_PRESETS["pixel art"]
    for name in (
        "photo",
        "anime",
        "oil painting",
        "watercolor",
        "3d render",
        "pixel art",
        "comic",
        "cinematic",
    ):
        assert name in prompts.STYLE_PRESETS
    with pytest.raises(ImageRequestError, match="unknown style 'vaporwave'; choose one of photo, anime"):
        prompts.styled_prompt("x", "", "vaporwave")


def test_frames_are_sampled_evenly_through_the_video(tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4", frames=8)  # frame i is grey level 25 * i
    frames = prompts.sample_frames(video, 4)
    levels = [float(frame.mean()) for frame in frames]
    assert levels == pytest.approx([25, 75, 125, 175], abs=6)
    assert len(prompts.sample_frames(video, 20)) == 8  # never more frames than the video has
    with pytest.raises(ImageRequestError, match="at least 1"):
        prompts.sample_frames(video, 0)


def test_usable_rewrite_keeps_prompts_and_rejects_garbage() -> None:
    assert prompts.usable_rewrite('Prompt: "a misty castle at dawn, soft light"\nextra') == (
        "a misty castle at dawn, soft light"
    )
    for answer in (None, "", "  \n ", "ok", "### ??? !!! 123 456 ---", "castle " * 30, "a, a, a, a, b, b, b"):
        assert prompts.usable_rewrite(answer) is None, answer


def test_without_models_the_template_alone(tmp_path: Path) -> None:
    draft = prompts.draft_prompt(video=write_mp4(tmp_path / "clip.mp4"), title="My vlog", kind="cover")
    assert draft.source == "template" and draft.captions == ()
    assert draft.prompt == prompts.template_prompt(title="My vlog", kind="cover")
    assert draft.negative == prompts.BASE_NEGATIVE


@pytest.mark.slow
def test_captions_and_llm_rewrite_through_real_models(tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4", frames=8)
    captioner = build_tiny_captioner(tmp_path / "blip")
    captions = prompts.caption_frames(prompts.sample_frames(video, 2), captioner)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)

    templated = prompts.draft_prompt(video=video, title="Beach day", caption_model=captioner, frames=2)
    assert templated.source == "template" and templated.captions == tuple(prompts.clean_captions(captions))
    assert templated.prompt == prompts.template_prompt(captions, "Beach day")

    good = build_scripted_llm(tmp_path / "good", "misty", GOOD_ANSWER)
    rewritten = prompts.draft_prompt(
        video=video, title="Beach day", caption_model=captioner, llm=good, frames=2
    )
    assert (rewritten.source, rewritten.prompt) == ("llm", "misty castle at dawn")
    assert rewritten.captions == templated.captions

    silent = build_scripted_llm(tmp_path / "silent", None, {})
    draft = prompts.draft_prompt(title="Beach day", llm=silent)
    assert (draft.source, draft.llm_answer) == ("template", "")
    assert draft.prompt == prompts.template_prompt(title="Beach day")

    looping = build_scripted_llm(tmp_path / "loop", "castle", {"castle": "castle"})
    draft = prompts.draft_prompt(title="Beach day", llm=looping)
    assert draft.source == "template" and draft.prompt == prompts.template_prompt(title="Beach day")
    assert draft.llm_answer is not None
    assert draft.llm_answer.split() == ["castle"] * prompts.MAX_NEW_TOKENS  # bounded, then refused

    # A tokenizer with a chat template gets the messages through it: this one ends the conversation
    # with "assistant", which the script answers differently from the plain "Prompt:" ending.
    chat = build_scripted_llm(
        tmp_path / "chat",
        "misty",
        {**GOOD_ANSWER, "assistant": "golden", "golden": "hour", "hour": "light", "light": EOS},
        chat_template="{% for m in messages %}{{ m['content'] }} {% endfor %}assistant",
    )
    assert prompts.draft_prompt(title="Beach day", llm=chat).prompt == "golden hour light"


def test_missing_or_broken_model_folders_are_explained(tmp_path: Path) -> None:
    video = write_mp4(tmp_path / "clip.mp4")
    with pytest.raises(ImageModelMissing, match=r"captioning model folder nowhere has no config\.json"):
        prompts.draft_prompt(video=video, caption_model=tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ImageModelMissing, match="language model folder broken cannot be loaded"):
        prompts.draft_prompt(title="x", llm=broken)
    assert str(tmp_path) not in _message(lambda: prompts.draft_prompt(title="x", llm=broken))


def _message(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except ImageModelMissing as exc:
        return str(exc)
    raise AssertionError("no error")


def test_frames_of_a_still_picture_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "still.png")
    with pytest.raises(MediaError, match="the video to describe must be a video"):
        prompts.sample_frames(tmp_path / "still.png", 2)
