"""The content filter: blocklist matching with its normalisation, and a tiny safety-checker model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.images.tiny_text_models import TINY_BLOCKS, TINY_VISION

from animatica.errors import ConfigError
from animatica.images import prompts, safety
from animatica.images.errors import ImageModelMissing, PromptRefused

LIST = safety.parse_blocklist(
    "# comment\nnude\nexplicit sex\ngore  # trailing comment\ndecapitat*\nparty\n\n"
)


def _hit(prompt: str) -> str | None:
    found = safety.find_blocked(prompt, LIST)
    return None if found is None else found[0].text


@pytest.mark.parametrize(
    ("prompt", "rule"),
    [
        ("a Nude figure", "nude"),
        ("NUDES on a beach", "nude"),
        ("N.u.d.e woman", "nude"),
        ("n u d e", "nude"),
        ("a n-u-d-e statue", "nude"),
        ("n_u_d_e", "nude"),
        ("nüde", "nude"),
        ("n\u200bude", "nude"),
        ("NUUUDE", "nude"),
        ("nud3 portrait", "nude"),
        ("n00de", None),  # "noode" is not the word
        ("explicit   sex scene", "explicit sex"),
        ("Explicit-Sex", "explicit sex"),
        ("g0re everywhere", "gore"),
        ("decapitated knight", "decapitat*"),
        ("two parties", "party"),
        ("denuded hillside", None),  # whole words only
        ("gorehound", None),
        ("sexy explicit", None),  # a phrase needs its words in order
        ("a nice portrait, 3d render, 1girl, 4k", None),
    ],
)
def test_blocklist_matching_and_normalisation(prompt: str, rule: str | None) -> None:
    assert _hit(prompt) == rule


def test_check_prompt_names_the_rule_and_uses_the_configured_file(tmp_path: Path) -> None:
    with pytest.raises(PromptRefused, match=r"'nude' matches the blocked term 'nud\*' \(the default"):
        safety.check_prompt("portrait, n.u.d.e", None)
    safety.check_prompt("a castle at dawn", None)
    own = tmp_path / "words.txt"
    own.write_text("castle\n", encoding="utf-8")
    with pytest.raises(PromptRefused, match=r"blocked term 'castle' \(blocklist words\.txt\)"):
        safety.check_prompt("two Castles at dawn", own)
    safety.check_prompt("portrait, nude", own)  # the operator's list replaces the default one
    with pytest.raises(ConfigError, match=r"blocklist nowhere\.txt cannot be read"):
        safety.check_prompt("x", tmp_path / "nowhere.txt")


def test_default_list_is_short_and_spares_ordinary_prompts_and_the_presets() -> None:
    default = safety.load_blocklist(None)
    assert 10 <= len(default.rules) <= 60
    ordinary = [
        prompts.template_prompt(["a man riding a horse on the beach"], "Summer vlog", "Our trip", kind)
        for kind in prompts.KINDS
    ]
    ordinary += [f"{preset.modifiers}" for preset in prompts.STYLE_PRESETS.values()]
    ordinary += ["Essex countryside", "a documentary about history", "class photo"]
    for prompt in ordinary:
        assert safety.find_blocked(prompt, default) is None, prompt


def _tiny_checker(folder: Path, flag_everything: bool, with_extractor: bool = False) -> Path:
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    config = CLIPConfig(text_config=TINY_BLOCKS, vision_config=TINY_VISION, projection_dim=8)
    torch.manual_seed(0)
    model = StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():
        # A concept flags a picture when cosine similarity minus its threshold is above 0 (cosines are
        # within [-1, 1]): threshold -2 flags every picture, threshold 2 none.
        model.concept_embeds_weights.fill_(-2.0 if flag_everything else 2.0)
        model.special_care_embeds_weights.fill_(2.0)
    model.save_pretrained(folder / "safety_checker")
    if with_extractor:
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        processor.save_pretrained(folder / "feature_extractor")
    return folder / "safety_checker"


@pytest.mark.slow
def test_safety_checker_refuses_flagged_pictures_only(tmp_path: Path) -> None:
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    safety.check_picture(picture, None)
    strict = _tiny_checker(tmp_path / "strict", flag_everything=True)
    with pytest.raises(PromptRefused, match="refused by the safety checker and was not kept"):
        safety.check_picture(picture, strict)
    lenient = _tiny_checker(tmp_path / "lenient", flag_everything=False, with_extractor=True)
    safety.check_picture(picture, lenient)
    with pytest.raises(ImageModelMissing, match=r"safety checker folder nothing has no config\.json"):
        safety.check_picture(picture, tmp_path / "nothing")
