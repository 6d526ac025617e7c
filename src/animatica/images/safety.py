"""The content filter: a blocklist on the prompt before anything runs, and the operator's safety-checker
model on the finished picture.

**Blocklist.** A text file, one word or phrase a line (``#`` starts a comment); the shipped
``blocklist.txt`` is the default and an operator's file replaces it. A term matches whole words,
case-insensitively, with its plurals (``-s``, ``-es``, ``-y`` → ``-ies``); a trailing ``*`` matches
any ending. Before matching, the prompt is normalised against the usual evasions: accents and
look-alike letters are folded (NFKD), invisible characters dropped, digits and symbols standing for
letters read as those letters inside a word (``n00d``, ``$ex``), letters spelled out one at a time
joined again (``N.u.d.e``, ``n u d e``, ``n-u-d-e``), and a letter repeated three or more times read
once (``nuuude``). It is a filter against casual misuse, not a classifier: the refusal names the term
that matched, so a false positive is easy to understand and the operator can edit the list.

Only the positive prompt is checked: negative prompts routinely name exactly what is to be avoided.

**Safety checker.** When configured, a diffusers ``StableDiffusionSafetyChecker`` folder (the
``safety_checker`` folder of a Stable Diffusion model; its CLIP preprocessing is read from a
``preprocessor_config.json`` beside it or in a sibling ``feature_extractor`` folder) scores the
finished picture, and a flagged picture is refused: it is never returned, saved or shown.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image

from animatica.errors import ConfigError
from animatica.images.errors import ImageModelMissing, PromptRefused

# Inside a word, these stand for letters.
_LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_SPELLED_OUT_MIN = 3  # "a b" is two words; "n u d e" is one spelled out


@dataclass(frozen=True)
class Rule:
    text: str  # as written in the file, for the refusal message
    words: tuple[str, ...]  # normalised; the last may end in "*"


@dataclass(frozen=True)
class Blocklist:
    rules: tuple[Rule, ...]
    source: str  # the file's name, for messages


def default_blocklist_text() -> str:
    return resources.files("animatica.images").joinpath("blocklist.txt").read_text(encoding="utf-8")


def parse_blocklist(text: str, source: str = "blocklist") -> Blocklist:
    rules = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        star = entry.endswith("*")
        words = _words(entry.rstrip("*"))
        if not words:
            continue
        if star:
            words[-1] += "*"
        rules.append(Rule(entry, tuple(words)))
    return Blocklist(tuple(rules), source)


def load_blocklist(path: Path | None) -> Blocklist:
    """The operator's blocklist file, or the shipped one when ``path`` is None."""
    if path is None:
        return parse_blocklist(default_blocklist_text(), "the default blocklist")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"the prompt blocklist {path.name} cannot be read ({type(exc).__name__}); it must be a UTF-8 "
            "text file with one word or phrase a line"
        ) from None
    return parse_blocklist(text, path.name)


def find_blocked(prompt: str, blocklist: Blocklist) -> tuple[Rule, str] | None:
    """The first rule ``prompt`` breaks and the (normalised) words that matched it, or None."""
    words = _words(prompt)
    runs = _spelled_out_runs(prompt)
    for rule in blocklist.rules:
        size = len(rule.words)
        for start in range(len(words) - size + 1):
            if all(_word_matches(words[start + i], want) for i, want in enumerate(rule.words)):
                return rule, " ".join(words[start : start + size])
        compact = "".join(rule.words).rstrip("*")
        for run in runs:
            if compact in run:
                return rule, run
    return None


def check_prompt(prompt: str, blocklist: Path | None) -> None:
    """Refuse ``prompt`` with ``PromptRefused`` naming the blocked term it matched; ``blocklist`` is the
    operator's file (None for the shipped list)."""
    found = find_blocked(prompt, load_blocklist(blocklist))
    if found is not None:
        rule, matched = found
        seen = f"'{matched}' matches " if matched != rule.text.rstrip("*") else ""
        raise PromptRefused(
            f"the prompt was refused by the content filter: {seen}the blocked term '{rule.text}'"
            f" ({_list_name(blocklist)}); change the prompt and try again"
        )


def check_picture(image: Image.Image, checker: Path | None, device: str = "cpu") -> None:
    """Refuse ``image`` with ``PromptRefused`` if the safety checker in folder ``checker`` flags it
    (nothing to do when no checker is configured)."""
    if checker is None:
        return
    import numpy as np
    import torch

    model, processor = _load_checker(str(Path(checker)), device)
    pixels = np.asarray(image.convert("RGB"))
    inputs = processor(images=[pixels], return_tensors="pt")
    with torch.inference_mode():
        _, flagged = model(clip_input=inputs["pixel_values"].to(model.device), images=[pixels.copy()])
    if flagged[0]:
        raise PromptRefused(
            "the finished picture was refused by the safety checker and was not kept; "
            "change the prompt and try again"
        )


@functools.lru_cache(maxsize=1)
def _load_checker(folder_text: str, device: str) -> tuple[Any, Any]:
    """Loaded once per worker process: the real checker is a 1.2 GB CLIP model."""
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPImageProcessor

    from animatica.device import resolve_device

    folder = Path(folder_text)
    if not (folder / "config.json").is_file():
        raise ImageModelMissing(
            f"the safety checker folder {folder.name or folder} has no config.json; give the safety_checker "
            "folder of a Stable Diffusion model (a StableDiffusionSafetyChecker saved with save_pretrained)"
        )
    try:
        model = StableDiffusionSafetyChecker.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ImageModelMissing(
            f"the safety checker folder {folder.name} cannot be loaded ({type(exc).__name__}); give the "
            "safety_checker folder of a Stable Diffusion model"
        ) from None
    for candidate in (folder, folder.parent / "feature_extractor"):
        if (candidate / "preprocessor_config.json").is_file():
            processor = CLIPImageProcessor.from_pretrained(candidate, local_files_only=True)
            break
    else:  # CLIP's own preprocessing, at the size the checker's vision tower was built for
        side = int(model.config.vision_config.image_size)
        processor = CLIPImageProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
    return model.to(resolve_device(device)).eval(), processor


def _words(text: str) -> list[str]:
    """Normalised words: folded letters, look-alikes read inside words, long letter runs shortened."""
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if unicodedata.category(c) not in ("Mn", "Cf")
    )
    words = []
    for chunk in text.lower().split():
        if any(c.isalpha() for c in chunk):
            chunk = chunk.translate(_LOOKALIKES)
        for word in re.findall(r"[^\W\d_]+", chunk):
            words.append(re.sub(r"(.)\1{2,}", r"\1", word))
    return words


def _spelled_out_runs(text: str) -> list[str]:
    """Runs of single letters (``n.u.d.e``, ``n u d e``) joined into one string each."""
    runs, current = [], []
    for word in _words(text):
        if len(word) == 1:
            current.append(word)
            continue
        if len(current) >= _SPELLED_OUT_MIN:
            runs.append("".join(current))
        current = []
    if len(current) >= _SPELLED_OUT_MIN:
        runs.append("".join(current))
    return runs


def _word_matches(word: str, want: str) -> bool:
    if want.endswith("*"):
        return word.startswith(want[:-1])
    if word in (want, want + "s", want + "es"):
        return True
    return want.endswith("y") and word == want[:-1] + "ies"


def _list_name(blocklist: Path | None) -> str:
    return "the default blocklist" if blocklist is None else f"blocklist {Path(blocklist).name}"
