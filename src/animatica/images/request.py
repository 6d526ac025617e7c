"""What a user asks for when they ask for a picture, checked before any model is loaded.

One request type serves the command line, the API and the job kind, so a picture asked for in any
of them is validated by the same rules and reproduces from the same fields (the seed included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from animatica.images.errors import ImageRequestError

OPERATIONS = ("generate", "img2img", "inpaint", "upscale", "style")

# Output sizes (width, height) a creator needs: a source portrait to animate, an avatar, a video
# thumbnail and a channel cover. Stable Diffusion draws near its native size; the rest is upscaling.
SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "portrait": (512, 512),
    "avatar": (800, 800),
    "thumbnail": (1280, 720),
    "cover": (2048, 1152),
}
MIN_SIDE = 64
MAX_SIDE = 4096

# Sampler names a user may pick; "default" keeps the one the model was saved with.
SCHEDULERS = ("default", "ddim", "pndm", "euler", "euler_a", "dpm++", "dpm++_karras", "lms", "heun", "unipc")

# Conditions a reference photo can give through ControlNet, drawn from its face landmarks.
CONTROLS = ("face", "pose")

MAX_STEPS = 200
# Style transfer counts L-BFGS iterations, a few hundred of which make a picture.
MAX_STYLE_STEPS = 1000
MAX_PROMPT = 2000
MAX_LORAS = 5


def parse_size(text: str) -> tuple[int, int]:
    """``"800x800"`` or a preset name (``avatar``, ``thumbnail``, ``cover``, ``portrait``) -> (W, H)."""
    key = text.strip().lower()
    if key in SIZE_PRESETS:
        return SIZE_PRESETS[key]
    match = re.fullmatch(r"(\d+)\s*[x×]\s*(\d+)", key)
    if not match:
        presets = ", ".join(SIZE_PRESETS)
        raise ImageRequestError(f"size {text!r} is not WIDTHxHEIGHT (e.g. 800x800) or one of {presets}")
    return int(match.group(1)), int(match.group(2))


def parse_lora(text: str) -> tuple[str, float]:
    """``"style.safetensors:0.8"`` -> (file, weight); the weight defaults to 1."""
    name, sep, weight = text.rpartition(":")
    if not sep:
        return text, 1.0
    try:
        return name, float(weight)
    except ValueError:
        raise ImageRequestError(f"LoRA weight in {text!r} is not a number (use FILE:0.8)") from None


@dataclass(frozen=True)
class ImageRequest:
    """One picture to make. Paths are local files (the service stores uploads first)."""

    operation: str = "generate"
    prompt: str = ""
    negative: str = ""
    size: tuple[int, int] = SIZE_PRESETS["portrait"]
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    scheduler: str = "default"
    # LoRA file names inside the operator's LoRA folder (the CLI also accepts paths), with weights.
    loras: tuple[tuple[str, float], ...] = ()
    style_preset: str | None = None
    init_image: Path | None = None
    mask: Path | None = None
    # A reference photo: its face landmarks are drawn as the ControlNet condition named by ``control``.
    control_image: Path | None = None
    control: str = "face"
    control_scale: float = 1.0
    # img2img / inpaint: how far from the init picture the result may go (1: all the way).
    strength: float = 0.75
    style_image: Path | None = None
    content_weight: float = 1.0
    style_weight: float = 1e6

    def validate(self) -> None:
        """Raise ``ImageRequestError`` for anything that cannot be honoured, in the user's terms."""
        if self.operation not in OPERATIONS:
            raise ImageRequestError(
                f"unknown operation {self.operation!r}; use one of {', '.join(OPERATIONS)}"
            )
        needs_prompt = self.operation in ("generate", "img2img", "inpaint")
        if needs_prompt and not self.prompt.strip():
            raise ImageRequestError("describe the picture: the prompt is empty")
        if len(self.prompt) > MAX_PROMPT or len(self.negative) > MAX_PROMPT:
            raise ImageRequestError(f"a prompt may be at most {MAX_PROMPT} characters")
        width, height = self.size
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise ImageRequestError(
                f"size {width}x{height} is out of range: each side from {MIN_SIDE} to {MAX_SIDE} pixels"
            )
        max_steps = MAX_STYLE_STEPS if self.operation == "style" else MAX_STEPS
        if not 1 <= self.steps <= max_steps:
            raise ImageRequestError(f"steps must be from 1 to {max_steps}, not {self.steps}")
        if not 0.0 <= self.guidance <= 30.0:
            raise ImageRequestError(f"guidance must be from 0 to 30, not {self.guidance:g}")
        if not 0 <= self.seed < 2**63:
            raise ImageRequestError("the seed must be a whole number from 0 to 2^63 - 1")
        if self.scheduler not in SCHEDULERS:
            raise ImageRequestError(
                f"unknown scheduler {self.scheduler!r}; use one of {', '.join(SCHEDULERS)}"
            )
        if not 0.0 < self.strength <= 1.0:
            raise ImageRequestError(f"strength must be above 0 and at most 1, not {self.strength:g}")
        if self.control not in CONTROLS:
            raise ImageRequestError(f"unknown control {self.control!r}; use one of {', '.join(CONTROLS)}")
        if not 0.0 <= self.control_scale <= 2.0:
            raise ImageRequestError("the control scale must be from 0 to 2")
        if len(self.loras) > MAX_LORAS:
            raise ImageRequestError(f"at most {MAX_LORAS} LoRA files at once")
        for name, weight in self.loras:
            if not name.endswith(".safetensors"):
                raise ImageRequestError(f"LoRA {name!r} is not a .safetensors file")
            if not -2.0 <= weight <= 2.0:
                raise ImageRequestError(f"LoRA weight {weight:g} of {name} is out of range (-2 to 2)")
        required = {
            "img2img": ("init_image",),
            "inpaint": ("init_image", "mask"),
            "upscale": ("init_image",),
            "style": ("init_image", "style_image"),
        }.get(self.operation, ())
        words = {"init_image": "a picture to start from", "mask": "a mask", "style_image": "a style picture"}
        for field in required:
            if getattr(self, field) is None:
                raise ImageRequestError(f"{self.operation} needs {words[field]}")
        if self.control_image is not None and self.operation != "generate":
            raise ImageRequestError("a reference photo for pose or face guidance goes with generate only")
        if self.content_weight < 0 or self.style_weight < 0:
            raise ImageRequestError("content and style weights cannot be negative")
