"""Prompts for a user's video: captions of its frames and its title through a fixed template, an
optional rewrite by a local language model, and style presets.

The prompt is always a draft the user can edit; this module only gives a sensible start.

**Template** (``template_prompt``), a comma-separated list as Stable Diffusion prompts are written:

    {framing}, {title}, {first sentence of the description}, {caption 1}, {caption 2}, {caption 3}, {finish}

``framing`` and ``finish`` depend on what the picture is for (``KINDS``): a thumbnail asks for a bold
16:9 composition with one clear subject, an avatar for a centred head and shoulders on a plain
background, a cover for a wide banner with calm space in the middle, a portrait for one frontal face
with even light (the kind of photo that animates well). Empty parts are left out; the title is cut
to 12 words, the description sentence to 25 and each caption to 20, so the whole stays within the
77 tokens the text encoder reads. Captions come from up to ``DEFAULT_FRAMES`` frames sampled evenly
through the video, deduplicated. The negative prompt is ``BASE_NEGATIVE`` (text in the picture is
asked away: Stable Diffusion draws it as gibberish).

**Rewrite.** With a local causal language model configured, the draft goes to it with
``SYSTEM_PROMPT`` (filled with the kind's target) as the system message, through the tokenizer's
chat template when it has one and as ``{system}\\n\\nDraft: {draft}\\nPrompt:`` otherwise. Decoding is
greedy (the same video gives the same prompt) and stops after ``MAX_NEW_TOKENS``. The answer's first
line is kept only if it looks like a prompt: at least 3 words, mostly letters, not a loop of the same
words; otherwise the template stands. Either way the result says which one it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from animatica.images.errors import ImageModelMissing, ImageRequestError

DEFAULT_FRAMES = 4
MAX_NEW_TOKENS = 80


@dataclass(frozen=True)
class Kind:
    framing: str
    finish: str
    # How the system prompt names the picture the language model writes for.
    target: str


KINDS: dict[str, Kind] = {
    "thumbnail": Kind(
        "eye-catching video thumbnail, bold composition, one clear focal subject",
        "vivid colors, high contrast, sharp focus, highly detailed",
        "a video thumbnail (16:9, seen small, one clear subject)",
    ),
    "avatar": Kind(
        "profile picture, centered head and shoulders, simple clean background",
        "soft light, sharp focus, highly detailed",
        "a square profile picture (head and shoulders, simple background)",
    ),
    "cover": Kind(
        "wide channel banner artwork, panoramic composition, calm open space in the middle",
        "cohesive color palette, highly detailed",
        "a wide channel banner (panoramic, calm space in the middle)",
    ),
    "portrait": Kind(
        "portrait of one person facing the camera, head and shoulders, neutral expression, eyes open",
        "even soft lighting, plain background, sharp focus, highly detailed",
        "a frontal head-and-shoulders portrait of one person with even lighting",
    ),
}

BASE_NEGATIVE = "blurry, low quality, jpeg artifacts, watermark, text, letters, logo, deformed, disfigured"

SYSTEM_PROMPT = (
    "You write prompts for Stable Diffusion, a text-to-image model. Rewrite the draft prompt you are "
    "given into one better prompt for {target}. Write a single line of short comma-separated phrases: "
    "the main subject first, then the setting, composition, lighting and mood. Keep what the draft says "
    "about the video; do not invent names, brands or text to be written in the picture. Use at most "
    "60 words. Reply with the prompt only."
)


@dataclass(frozen=True)
class StylePreset:
    modifiers: str
    negative: str


# Appended to the prompt (modifiers) and the negative prompt; each negative names the looks the
# style is not, so that e.g. "anime" does not drift to photorealism.
STYLE_PRESETS: dict[str, StylePreset] = {
    "photo": StylePreset(
        "professional photograph, natural lighting, 50mm lens, realistic textures, sharp focus",
        "painting, drawing, illustration, cartoon, anime, 3d render, cgi",
    ),
    "anime": StylePreset(
        "anime style illustration, cel shading, clean line art, vibrant colors",
        "photorealistic, photograph, 3d render, realistic skin texture",
    ),
    "oil painting": StylePreset(
        "oil painting on canvas, visible brush strokes, rich textured paint, classical fine art",
        "photograph, photorealistic, 3d render, flat colors, digital art",
    ),
    "watercolor": StylePreset(
        "watercolor painting, soft washes, bleeding edges, paper texture, gentle pastel palette",
        "photograph, photorealistic, 3d render, hard edges, heavy outlines",
    ),
    "3d render": StylePreset(
        "3d render, global illumination, soft shadows, smooth stylized materials, octane render",
        "photograph, painting, pencil sketch, flat 2d, line art",
    ),
    "pixel art": StylePreset(
        "pixel art, 16-bit retro video game style, limited color palette, crisp pixels",
        "photograph, photorealistic, blurry, smooth gradients, anti-aliasing, 3d render",
    ),
    "comic": StylePreset(
        "comic book art, bold ink outlines, halftone shading, dynamic composition",
        "photograph, photorealistic, 3d render, soft focus",
    ),
    "cinematic": StylePreset(
        "cinematic film still, dramatic lighting, shallow depth of field, anamorphic lens, color graded",
        "cartoon, anime, drawing, flat lighting, overexposed",
    ),
    "sketch": StylePreset(
        "pencil sketch, graphite on paper, cross-hatching, expressive lines, monochrome",
        "color, photograph, 3d render, painting",
    ),
    "fantasy art": StylePreset(
        "epic fantasy illustration, magical atmosphere, intricate details, painterly digital art",
        "photograph, mundane, plain background, low detail",
    ),
}


@dataclass(frozen=True)
class PromptDraft:
    prompt: str
    negative: str
    # The cleaned captions of the sampled frames that went into the template.
    captions: tuple[str, ...]
    # "template", or "llm" when the language model's rewrite was kept.
    source: str
    # The language model's raw answer (also when it was rejected), for the curious and for tests.
    llm_answer: str | None = None


def preset_names() -> list[str]:
    return list(STYLE_PRESETS)


def style_preset(name: str) -> StylePreset:
    """The preset called ``name`` (case, dashes and underscores do not matter)."""
    key = " ".join(re.split(r"[\s_\-]+", name.strip().lower()))
    try:
        return STYLE_PRESETS[key]
    except KeyError:
        raise ImageRequestError(f"unknown style {name!r}; choose one of {', '.join(STYLE_PRESETS)}") from None


def styled_prompt(prompt: str, negative: str, preset: str) -> tuple[str, str]:
    """``prompt`` and ``negative`` with the preset's phrases appended, each phrase at most once (so a
    prompt that was styled already, or edited after styling, does not grow on every use)."""
    chosen = style_preset(preset)
    return _join_phrases(prompt, chosen.modifiers), _join_phrases(negative, chosen.negative)


def template_prompt(
    captions: Sequence[str] = (), title: str = "", description: str = "", kind: str = "thumbnail"
) -> str:
    """The fixed template of the module docstring."""
    framing = _kind(kind)
    parts = [framing.framing, _words(_clean(title), 12), _words(_first_sentence(description), 25)]
    parts += [_words(caption, 20) for caption in clean_captions(captions)[:3]]
    parts.append(framing.finish)
    return ", ".join(part for part in parts if part)


def clean_captions(captions: Sequence[str]) -> list[str]:
    """Captions without stock openings, stray punctuation and duplicates, in their order."""
    seen: set[str] = set()
    cleaned = []
    for caption in captions:
        text = _clean(caption)
        text = re.sub(
            r"^(there is|there are|this is|an? (?:picture|image|photo) of)\s+", "", text, flags=re.I
        )
        # BLIP-family captioners emit these non-words for "a person" from their web training data.
        text = re.sub(r"\b(arafed|araffe|arafy|arafe)\b\s*", "", text, flags=re.I).strip()
        key = text.lower()
        if text and key not in seen:
            seen.add(key)
            cleaned.append(text)
    return cleaned


def draft_prompt(
    *,
    video: Path | None = None,
    title: str = "",
    description: str = "",
    kind: str = "thumbnail",
    caption_model: Path | None = None,
    llm: Path | None = None,
    frames: int = DEFAULT_FRAMES,
    device: str = "cpu",
) -> PromptDraft:
    """A prompt for a picture of ``kind`` for the user's video: captions of ``frames`` frames of
    ``video`` (when a captioning model folder is given) and the title and description through the
    template, rewritten by the language model folder ``llm`` when one is given."""
    _kind(kind)
    captions: list[str] = []
    if video is not None and caption_model is not None:
        captions = clean_captions(caption_frames(sample_frames(Path(video), frames), caption_model, device))
    draft = template_prompt(captions, title, description, kind)
    if llm is None:
        return PromptDraft(draft, BASE_NEGATIVE, tuple(captions), "template")
    answer = rewrite_prompt(draft, kind, llm, device)
    usable = usable_rewrite(answer)
    if usable is None:
        return PromptDraft(draft, BASE_NEGATIVE, tuple(captions), "template", answer)
    return PromptDraft(usable, BASE_NEGATIVE, tuple(captions), "llm", answer)


def sample_frames(video: Path, count: int = DEFAULT_FRAMES) -> list[np.ndarray]:
    """``count`` frames spread evenly through ``video`` (the middle of each of ``count`` equal parts),
    each reached by seeking, so a long video costs no more than a short one."""
    from animatica.media.probe import probe, require_video
    from animatica.media.reader import iter_frames

    if count < 1:
        raise ImageRequestError(f"the number of frames to caption must be at least 1, not {count}")
    info = require_video(probe(video), "video to describe")
    total = info.frame_count or 1
    starts = sorted({min(total - 1, int((i + 0.5) * total / count)) for i in range(count)})
    frames = []
    for start in starts:
        stream = iter_frames(info.path, start=start)
        try:
            frame = next(stream, None)
        finally:
            stream.close()
        if frame is not None:
            frames.append(frame)
    if not frames:
        frames = [next(iter(iter_frames(info.path)))]
    return frames


def caption_frames(frames: Sequence[np.ndarray], model_dir: Path, device: str = "cpu") -> list[str]:
    """One caption per frame from a local image-to-text model folder (BLIP and its kin)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor, model = _load(
        (AutoProcessor, AutoModelForImageTextToText),
        model_dir,
        device,
        "captioning",
        "transformers image-to-text folder such as a BLIP captioning model saved with save_pretrained",
    )
    captions = []
    with torch.inference_mode():
        for frame in frames:
            inputs = processor(images=[frame], return_tensors="pt").to(model.device)
            output = model.generate(**inputs, max_new_tokens=30, do_sample=False)
            captions.append(processor.batch_decode(output, skip_special_tokens=True)[0])
    return captions


def rewrite_prompt(draft: str, kind: str, model_dir: Path, device: str = "cpu") -> str:
    """The language model's answer (new text only, special tokens dropped) to the system prompt and
    ``draft``; judged by ``usable_rewrite``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer, model = _load(
        (AutoTokenizer, AutoModelForCausalLM),
        model_dir,
        device,
        "language",
        "transformers causal language model folder (model and tokenizer saved with save_pretrained)",
    )
    system = SYSTEM_PROMPT.format(target=_kind(kind).target)
    ids = _encode(tokenizer, system, draft).to(model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.inference_mode():
        output = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            pad_token_id=pad,
        )
    return str(tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True))


def usable_rewrite(answer: str | None) -> str | None:
    """The prompt in a language model's answer, or None when the answer is empty or not a prompt."""
    if not answer:
        return None
    line = next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:new |improved |rewritten )?prompt\s*:\s*", "", line, flags=re.I)
    line = line.strip().strip("\"'`").strip()
    words = re.findall(r"[^\W\d_]+", line)
    if len(words) < 3:
        return None
    visible = [c for c in line if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.6 * len(visible):
        return None
    if len({w.lower() for w in words}) < 0.5 * len(words):
        return None
    return _words(line, 80)


def _encode(tokenizer: Any, system: str, draft: str) -> Any:
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": draft}]
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return encoded["input_ids"]
    return tokenizer(f"{system}\n\nDraft: {draft}\nPrompt:", return_tensors="pt")["input_ids"]


def _load(classes: tuple[Any, Any], model_dir: Path, device: str, what: str, hint: str) -> tuple[Any, Any]:
    """A transformers folder's preprocessor (processor or tokenizer) and model, the model on
    ``device`` for inference (``classes``: the two Auto classes); ImageModelMissing naming the
    folder and what it should hold (``hint``) when it cannot be loaded."""
    from animatica.device import resolve_device

    folder = _model_folder(model_dir, what)
    preprocessor_class, model_class = classes
    try:
        preprocessor = preprocessor_class.from_pretrained(folder, local_files_only=True)
        model = model_class.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ImageModelMissing(
            f"the {what} model folder {folder.name} cannot be loaded ({type(exc).__name__}); give a {hint}"
        ) from None
    return preprocessor, model.to(resolve_device(device)).eval()


def _model_folder(path: Path, what: str) -> Path:
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ImageModelMissing(
            f"the {what} model folder {folder.name or folder} has no config.json; give a transformers "
            "model folder saved with save_pretrained"
        )
    return folder


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ImageRequestError(f"unknown picture kind {kind!r}; choose one of {', '.join(KINDS)}") from None


def _join_phrases(text: str, extra: str) -> str:
    phrases = [p.strip() for p in text.split(",") if p.strip()]
    have = {p.lower() for p in phrases}
    for phrase in (p.strip() for p in extra.split(",")):
        if phrase and phrase.lower() not in have:
            phrases.append(phrase)
            have.add(phrase.lower())
    return ", ".join(phrases)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip().strip(".,;:!?-").strip()


def _first_sentence(text: str) -> str:
    return _clean(re.split(r"(?<=[.!?])\s|\n", _clean(text), maxsplit=1)[0])


def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]).rstrip(",;:")
