"""The operator's picture models: where they are, and what to tell someone when one is not there.

Nothing is downloaded, so every weight is a path the operator sets. A model comes in one of the two
forms people have: a diffusers folder (``model_index.json`` and one folder per component), or one
``.safetensors`` checkpoint in the original Stable Diffusion layout. A checkpoint holds weights only,
so it needs the configs of its architecture (the same diffusers folder without the weights, a few
megabytes) in a folder beside it named like the file without the extension:
``sd15.safetensors`` + ``sd15/``. That keeps each setting a single path and loading strictly offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from animatica.images.errors import ImageModelMissing

if TYPE_CHECKING:
    from animatica.settings import Settings

PIPELINE_LAYOUT = "model_index.json, unet/, vae/, text_encoder/, tokenizer/ and scheduler/"


@dataclass(frozen=True)
class ModelSlot:
    """One configurable model: which setting holds it and what belongs there."""

    key: str
    setting: str
    what: str
    required_for: str


SLOTS = (
    ModelSlot(
        "diffusion",
        "ANIMATICA_DIFFUSION_MODEL",
        "a Stable Diffusion 1.x/2.x diffusers folder (" + PIPELINE_LAYOUT + "), or a .safetensors checkpoint "
        "with those config files in a folder of the same name beside it",
        "generating pictures (and image-to-image)",
    ),
    ModelSlot(
        "inpaint",
        "ANIMATICA_INPAINT_MODEL",
        "an inpainting model (such as stable-diffusion-inpainting, a 9-channel UNet), same two forms",
        "inpainting",
    ),
    ModelSlot(
        "upscale",
        "ANIMATICA_UPSCALE_MODEL",
        "the x4 upscaler (a stable-diffusion-x4-upscaler folder or checkpoint); without it pictures are "
        "enlarged by a resampler",
        "x4 upscaling with a model",
    ),
    ModelSlot(
        "controlnet",
        "ANIMATICA_CONTROLNET_MODELS",
        "JSON mapping a condition to a ControlNet folder (config.json + weights) or .safetensors file, "
        'e.g. {"face": "/models/controlnet-face", "pose": "/models/controlnet-openpose"}',
        "pose and face guidance from a reference photo",
    ),
    ModelSlot(
        "lora_dir",
        "ANIMATICA_LORA_DIR",
        "a folder of LoRA .safetensors files made for the diffusion model",
        "LoRA styles",
    ),
    ModelSlot(
        "caption", "ANIMATICA_CAPTION_MODEL", "a BLIP-style captioning model folder", "prompts from videos"
    ),
    ModelSlot("prompt_llm", "ANIMATICA_PROMPT_LLM", "a local causal LLM folder", "prompt rewriting"),
    ModelSlot("vgg", "ANIMATICA_VGG_WEIGHTS", "torchvision VGG16 or VGG19 weights (.pth)", "style transfer"),
    ModelSlot(
        "blocklist",
        "ANIMATICA_PROMPT_BLOCKLIST",
        "a text file of refused words, one a line",
        "the prompt filter",
    ),
    ModelSlot(
        "safety", "ANIMATICA_SAFETY_CHECKER", "a safety-checker model folder", "checking finished pictures"
    ),
)
SLOT = {slot.key: slot for slot in SLOTS}


@dataclass(frozen=True)
class ModelStatus:
    """One line of ``animatica models check`` and of the page's 'what is configured' list."""

    key: str
    setting: str
    path: str | None
    state: str  # "configured", "not configured" or "missing"
    detail: str


def _path(value: str) -> Path | None:
    return Path(value).expanduser() if value and value.strip() else None


@dataclass(frozen=True)
class ImageModels:
    """Paths of the operator's models (all optional) and how to load them."""

    diffusion: Path | None = None
    inpaint: Path | None = None
    upscale: Path | None = None
    controlnets: tuple[tuple[str, Path], ...] = ()
    lora_dir: Path | None = None
    caption: Path | None = None
    prompt_llm: Path | None = None
    vgg: Path | None = None
    blocklist: Path | None = None
    safety: Path | None = None
    attention_slicing: bool = False
    vae_tiling: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageModels:
        controlnets = tuple(
            (name, path)
            for name, value in sorted(settings.controlnet_models.items())
            if (path := _path(value))
        )
        return cls(
            diffusion=_path(settings.diffusion_model),
            inpaint=_path(settings.inpaint_model),
            upscale=_path(settings.upscale_model),
            controlnets=controlnets,
            lora_dir=_path(settings.lora_dir),
            caption=_path(settings.caption_model),
            prompt_llm=_path(settings.prompt_llm),
            vgg=_path(settings.vgg_weights),
            blocklist=_path(settings.prompt_blocklist),
            safety=_path(settings.safety_checker),
            attention_slicing=settings.image_attention_slicing,
            vae_tiling=settings.image_vae_tiling,
        )

    def controlnet(self, condition: str) -> Path | None:
        return dict(self.controlnets).get(condition)

    def require(self, key: str) -> Path:
        """The configured path of ``key``, or ``ImageModelMissing`` naming the setting and what goes there."""
        path = getattr(self, key)
        slot = SLOT[key]
        if path is None:
            raise ImageModelMissing(
                f"{slot.required_for[0].upper()}{slot.required_for[1:]} needs a model that is not "
                f"configured: set {slot.setting} to {slot.what}."
            )
        if not Path(path).exists():
            raise ImageModelMissing(
                f"{slot.setting} points at {path}, which does not exist: put {slot.what} there."
            )
        return Path(path)

    def require_controlnet(self, condition: str) -> Path:
        path = self.controlnet(condition)
        slot = SLOT["controlnet"]
        if path is None:
            have = ", ".join(name for name, _ in self.controlnets) or "none"
            raise ImageModelMissing(
                f"No ControlNet is configured for the {condition!r} condition (configured: {have}): "
                f"add it to {slot.setting}, {slot.what}."
            )
        if not path.exists():
            raise ImageModelMissing(f"{slot.setting} names {path} for {condition!r}, which does not exist.")
        return path

    def lora_file(self, name: str) -> Path:
        """A LoRA file picked by name; only files directly inside the LoRA folder can be named."""
        folder = self.require("lora_dir")
        candidate = folder / name
        if Path(name).name != name or not candidate.is_file():
            raise ImageModelMissing(
                f"There is no LoRA file {name!r} in the LoRA folder ({SLOT['lora_dir'].setting}); "
                f"pick one of: {', '.join(self.lora_names()) or 'none (the folder is empty)'}."
            )
        return candidate

    def lora_names(self) -> list[str]:
        """The LoRA files users may pick (the page lists them)."""
        if self.lora_dir is None or not self.lora_dir.is_dir():
            return []
        return sorted(p.name for p in self.lora_dir.glob("*.safetensors") if p.is_file())

    def describe(self) -> list[ModelStatus]:
        """Every slot: configured (the path exists), missing (set but not there) or not configured."""
        rows = []
        for slot in SLOTS:
            if slot.key == "controlnet":
                if not self.controlnets:
                    rows.append(ModelStatus(slot.key, slot.setting, None, "not configured", slot.what))
                for name, path in self.controlnets:
                    rows.append(_status(f"controlnet:{name}", slot, path))
                continue
            rows.append(_status(slot.key, slot, getattr(self, slot.key)))
        return rows


def _status(key: str, slot: ModelSlot, path: Path | None) -> ModelStatus:
    if path is None:
        return ModelStatus(
            key, slot.setting, None, "not configured", f"needed for {slot.required_for}: {slot.what}"
        )
    if not path.exists():
        return ModelStatus(key, slot.setting, str(path), "missing", f"nothing there; put {slot.what} there")
    return ModelStatus(key, slot.setting, str(path), "configured", slot.required_for)


@dataclass(frozen=True)
class WeightsLocation:
    """Where a model's weights and configs are: ``config`` is None for a diffusers folder."""

    weights: Path
    config: Path | None

    @property
    def single_file(self) -> bool:
        return self.config is not None


def locate_weights(path: Path, setting: str, marker: str = "model_index.json") -> WeightsLocation:
    """A diffusers folder (``marker`` inside) or a ``.safetensors`` file with its config folder beside it.

    ``marker`` is ``model_index.json`` for a whole pipeline, ``config.json`` for one model (a ControlNet).
    """
    path = Path(path)
    if path.is_dir():
        if not (path / marker).is_file():
            raise ImageModelMissing(
                f"{setting}: {path} is a folder without {marker}; point it at a diffusers model folder "
                "or a .safetensors checkpoint."
            )
        return WeightsLocation(path, None)
    if not path.exists():
        raise ImageModelMissing(f"{setting}: {path} does not exist.")
    if path.suffix.lower() in (".ckpt", ".pt", ".pth", ".bin"):
        raise ImageModelMissing(
            f"{setting}: {path.name} is a pickle checkpoint, which can run code when loaded; "
            "use the .safetensors form of these weights."
        )
    if path.suffix.lower() != ".safetensors":
        raise ImageModelMissing(f"{setting}: {path.name} is not a .safetensors checkpoint or a model folder.")
    config = path.with_suffix("")
    if not (config / marker).is_file():
        raise ImageModelMissing(
            f"{setting}: the checkpoint {path.name} needs the configs of its architecture beside it: put the "
            f"model's diffusers folder without weights ({marker}"
            + (f", {PIPELINE_LAYOUT.split(', ', 1)[1]}" if marker == "model_index.json" else "")
            + f") in {config}/."
        )
    return WeightsLocation(path, config)
