"""``animatica models check``: every configured picture model loaded once, each with a one-line verdict.

An operator finds out here, not from a user's failed job, that a path is wrong, a checkpoint lacks its
config folder or a file is damaged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from animatica.errors import AnimaticaError
from animatica.images.models import SLOT, ImageModels

OK = "OK"
MISSING = "missing"
BROKEN = "broken"
UNSET = "not configured"


@dataclass(frozen=True)
class CheckLine:
    key: str
    setting: str
    path: str | None
    state: str  # OK, missing, broken or not configured
    detail: str

    def text(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.state:<15} {self.key:<18} {self.setting}{where}: {self.detail}"


def check_models(models: ImageModels, device: str = "cpu") -> list[CheckLine]:
    """One line per slot (per ControlNet condition), loading each configured model once."""
    lines = []
    for status in models.describe():
        if status.state == "not configured":
            lines.append(CheckLine(status.key, status.setting, None, UNSET, status.detail))
            continue
        if status.state == "missing":
            lines.append(CheckLine(status.key, status.setting, status.path, MISSING, status.detail))
            continue
        loader = _LOADERS[status.key.split(":", 1)[0]]
        started = time.perf_counter()
        try:
            detail = loader(Path(status.path or ""), models, device)
        except (AnimaticaError, OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            state = MISSING if isinstance(exc, FileNotFoundError) else BROKEN
            lines.append(CheckLine(status.key, status.setting, status.path, state, message[:400]))
            continue
        seconds = time.perf_counter() - started
        lines.append(
            CheckLine(status.key, status.setting, status.path, OK, f"{detail} (loaded in {seconds:.1f} s)")
        )
    return lines


def _pipeline(kind: str, key: str) -> Callable[[Path, ImageModels, str], str]:
    def load(path: Path, _models: ImageModels, device: str) -> str:
        from animatica.images.pipelines import load_pipeline
        from animatica.images.sizes import native_side

        pipe = load_pipeline(kind, path, SLOT[key].setting, device=device)
        native = native_side(pipe.unet.config.sample_size, pipe.vae_scale_factor)
        channels = pipe.unet.config.in_channels
        if kind == "upscale":
            return f"x4 upscaler ({channels}-channel UNet)"
        form = "single file" if path.is_file() else "diffusers folder"
        return f"{form}, native {native} px, {channels}-channel UNet"

    return load


def _controlnet(path: Path, _models: ImageModels, _device: str) -> str:
    import torch

    from animatica.images.pipelines import load_controlnet

    model = load_controlnet(path, torch.float32)
    return f"ControlNet, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters"


def _loras(path: Path, models: ImageModels, _device: str) -> str:
    from safetensors import safe_open

    if not path.is_dir():
        raise AnimaticaError("not a folder")
    names = models.lora_names()
    for name in names:
        with safe_open(str(path / name), framework="pt") as handle:
            if not list(handle.keys()):
                raise AnimaticaError(f"{name} holds no tensors")
    return f"{len(names)} LoRA file(s)" + (f": {', '.join(names[:8])}" if names else "")


def _transformers_model(path: Path, _models: ImageModels, _device: str) -> str:
    """A transformers folder loaded with the class its config names (captioner, LLM, safety checker)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
    names = list(getattr(config, "architectures", None) or [])
    cls: Any = None
    for name in names:
        cls = getattr(transformers, name, None)
        if cls is None:
            import diffusers.pipelines.stable_diffusion as sd

            cls = getattr(sd, name, None)
        if cls is not None:
            break
    if cls is None:
        raise AnimaticaError(f"its config names no model class this version can load ({names or 'none'})")
    cls.from_pretrained(path, local_files_only=True)
    return cls.__name__


def _vgg(path: Path, _models: ImageModels, _device: str) -> str:
    from animatica.vgg import detect_arch, read_state

    arch = detect_arch(read_state(path))
    if arch is None:
        raise AnimaticaError("not torchvision VGG16 or VGG19 weights")
    return f"{arch} weights"


def _blocklist(path: Path, _models: ImageModels, _device: str) -> str:
    from animatica.images.safety import load_blocklist

    return f"{len(load_blocklist(path).rules)} entries"


_LOADERS: dict[str, Callable[[Path, ImageModels, str], str]] = {
    "diffusion": _pipeline("text2img", "diffusion"),
    "inpaint": _pipeline("inpaint", "inpaint"),
    "upscale": _pipeline("upscale", "upscale"),
    "controlnet": _controlnet,
    "lora_dir": _loras,
    "caption": _transformers_model,
    "prompt_llm": _transformers_model,
    "vgg": _vgg,
    "blocklist": _blocklist,
    "safety": _transformers_model,
}
