"""Loading diffusers pipelines from the operator's files, strictly offline, and LoRA files per request.

Every load passes ``local_files_only=True`` and a single checkpoint always gets its local config
folder (``models.locate_weights``), so no code path can reach the Hugging Face Hub: a missing file is
an error naming the setting, never a download. The bundled safety checker of SD folders is not loaded
(``safety.py`` runs the operator's own checker when one is configured).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from animatica.images.errors import ImageModelMissing, ImageRequestError
from animatica.images.models import WeightsLocation, locate_weights

# Scheduler names of the request -> (diffusers class, extra config).
_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {}),
    "dpm++_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "lms": ("LMSDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

# Pipeline class of each way a model is used.
_CLASSES = {
    "text2img": "StableDiffusionPipeline",
    "img2img": "StableDiffusionImg2ImgPipeline",
    "inpaint": "StableDiffusionInpaintPipeline",
    "controlnet": "StableDiffusionControlNetPipeline",
    "upscale": "StableDiffusionUpscalePipeline",
}
# Components of SD folders that the pipelines above may list but that are not loaded.
_SKIPPED = {"safety_checker": None, "feature_extractor": None}


def stay_offline() -> None:
    """Tell the Hugging Face libraries to stay off the network and to keep quiet (no progress bars
    in a worker's log), as every process that loads models should: before they are first imported,
    where it can be arranged, since the hub reads its offline switch once.

    peft's notice that a model gets several adapters is silenced too: a request with several LoRA
    files loads one adapter per file on purpose (`loras_applied`).
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute", category=UserWarning)
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16 and bf16 only where they are supported; ``auto``: the device's fast type (fp32 on most CPUs)."""
    if precision == "fp16":
        if device.type != "cuda":
            raise ImageRequestError("fp16 needs a CUDA GPU; use fp32 or bf16 on a CPU")
        return torch.float16
    from animatica.device import resolve_precision

    return resolve_precision(precision, device)


def load_pipeline(
    kind: str,
    path: Path,
    setting: str,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    controlnet: Path | None = None,
    attention_slicing: bool = False,
    vae_tiling: bool = False,
) -> Any:
    """The ``kind`` pipeline (see ``_CLASSES``) of the model at ``path``, on ``device``.

    ``setting`` names where the path came from, for the error message when it cannot be loaded.
    """
    import diffusers

    location = locate_weights(path, setting)
    cls = getattr(diffusers, _CLASSES[kind])
    extra: dict[str, Any] = {}
    if kind == "controlnet":
        if controlnet is None:
            raise ValueError("a controlnet pipeline needs a ControlNet")
        extra["controlnet"] = load_controlnet(controlnet, dtype)
    if kind != "upscale":
        extra.update(_SKIPPED)
        extra["requires_safety_checker"] = False
    try:
        pipe = _from_location(cls, location, dtype, extra)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ImageModelMissing(
            f"{setting}: the model at {path} could not be loaded ({_first_line(exc)})."
        ) from exc
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(torch.device(device))
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()
    return pipe


def dtype_keyword() -> str:
    """The name diffusers' loaders take the weights' type under: ``dtype`` where it is understood
    (``torch_dtype`` then only warns that it is deprecated), ``torch_dtype`` in earlier releases,
    which would pass an unknown ``dtype`` on to the components instead of using it."""
    import diffusers
    from diffusers.utils import deprecation_utils
    from packaging.version import Version

    if hasattr(deprecation_utils, "_resolve_dtype") or Version(diffusers.__version__) >= Version("1.0"):
        return "dtype"
    return "torch_dtype"


def _from_location(cls: Any, location: WeightsLocation, dtype: torch.dtype, extra: dict[str, Any]) -> Any:
    """A diffusers class (pipeline or model) from a folder, or from one checkpoint and its configs."""
    options = {"local_files_only": True, dtype_keyword(): dtype, **extra}
    if location.single_file:
        return cls.from_single_file(str(location.weights), config=str(location.config), **options)
    return cls.from_pretrained(location.weights, **options)


def load_controlnet(path: Path, dtype: torch.dtype) -> Any:
    from diffusers import ControlNetModel

    location = locate_weights(path, "ANIMATICA_CONTROLNET_MODELS", marker="config.json")
    try:
        return _from_location(ControlNetModel, location, dtype, {})
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ImageModelMissing(
            f"ANIMATICA_CONTROLNET_MODELS: the ControlNet at {path} could not be loaded ({_first_line(exc)})."
        ) from exc


def derive(pipe: Any, kind: str) -> Any:
    """Another kind of pipeline over the same loaded components (img2img or inpainting from text2img)."""
    import diffusers

    cls = getattr(diffusers, _CLASSES[kind])
    derived = cls(**{**pipe.components, **_SKIPPED, "requires_safety_checker": False})
    derived.set_progress_bar_config(disable=True)
    return derived


def use_scheduler(pipe: Any, name: str) -> None:
    """Replace the pipeline's sampler by ``name`` (``default`` keeps the one saved with the model)."""
    if name == "default":
        return
    import diffusers

    class_name, overrides = _SCHEDULERS[name]
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


@contextlib.contextmanager
def loras_applied(pipe: Any, loras: Sequence[tuple[Path, float]]) -> Iterator[None]:
    """``pipe`` with the LoRA files at their weights for the duration; unloaded after, even on error.

    Unloading removes the adapter layers without ever merging them, so the base weights come back
    exactly as they were.
    """
    if not loras:
        yield
        return
    names = []
    try:
        for index, (path, _weight) in enumerate(loras):
            name = f"lora{index}"
            try:
                pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ImageRequestError(
                    f"the LoRA file {path.name} does not fit this model ({_first_line(exc)})"
                ) from exc
            names.append(name)
            if not any(name in adapters for adapters in pipe.get_list_adapters().values()):
                # diffusers only warns when no key names a layer of this model (a LoRA for another model).
                raise ImageRequestError(f"the LoRA file {path.name} matches no layer of this model")
        pipe.set_adapters(names, adapter_weights=[weight for _path, weight in loras])
        yield
    finally:
        if names:
            pipe.unload_lora_weights()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
