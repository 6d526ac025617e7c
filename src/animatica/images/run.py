"""The one entry point that turns an ``ImageRequest`` into a picture, for the CLI and the job kind alike.

Order of work: the request is checked and the prompt filtered before any model is loaded (a refusal
costs nothing); the picture is drawn near the model's native size (``sizes.py``); LoRA files are
applied for this request only; the result is enlarged to the requested size (x4 model or Lanczos) and
checked by the operator's safety checker. Seeds go through a CPU ``torch.Generator``, so the same
request gives the same pixels on the same machine whatever the device.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter

from animatica.images import sizes
from animatica.images.errors import ImageModelMissing, ImageRequestError
from animatica.images.models import SLOT, ImageModels
from animatica.images.request import ImageRequest
from animatica.media.fit import fit_frame

Progress = Callable[[int, int], None]

# Feather of the inpainting mask's edge, as a fraction of the output's shorter side: the redrawn part
# blends into the kept picture instead of ending at a hard seam.
MASK_FEATHER = 0.01


class _Steps:
    """Denoising steps of every phase of one request, reported as one (done, total) count."""

    def __init__(self, progress: Progress | None, later: int = 0) -> None:
        self.progress = progress
        self.done = 0
        self.phase_total = 0
        self.later = later  # steps of phases still to come (the x4 model)

    def phase(self, total: int, later: int = 0) -> None:
        self.done += self.phase_total if self.phase_total else 0
        self.phase_total = total
        self.later = later

    def report(self, step_in_phase: int) -> None:
        if self.progress is not None:
            self.progress(self.done + step_in_phase, self.done + self.phase_total + self.later)


def run_image_request(
    request: ImageRequest,
    models: ImageModels,
    *,
    progress: Progress | None = None,
    device: str = "cpu",
    precision: str = "auto",
) -> Image.Image:
    """The picture ``request`` asks for, at exactly ``request.size``.

    ``progress(done, total)`` is called after every denoising step (and every style-transfer step);
    raising from it stops the work, which is how a cancelled job ends.
    """
    request.validate()
    from animatica.images import safety

    # Only what is asked for: a negative prompt names what must NOT be drawn ("nude, gore" keeps it out).
    safety.check_prompt(request.prompt, models.blocklist)
    if request.style_preset:
        from animatica.images.prompts import styled_prompt

        prompt, negative = styled_prompt(request.prompt, request.negative, request.style_preset)
        request = _replace(request, prompt=prompt, negative=negative)
    if request.operation == "style":
        image = _style(request, models, progress, device)
    else:
        image = _diffuse(request, models, progress, device, precision)
    safety.check_picture(image, models.safety, device)
    return image


def _replace(request: ImageRequest, **changes: Any) -> ImageRequest:
    from dataclasses import replace

    return replace(request, **changes)


def _style(request: ImageRequest, models: ImageModels, progress: Progress | None, device: str) -> Image.Image:
    from animatica.images.style import MAX_SIZE_LIMIT, transfer_style

    vgg = models.require("vgg")
    result = transfer_style(
        _read(request.init_image),
        _read(request.style_image),
        vgg,
        max_size=min(max(request.size), MAX_SIZE_LIMIT),  # work at the output size: no resampling after
        steps=request.steps,
        content_weight=request.content_weight,
        style_weight=request.style_weight,
        seed=request.seed,
        progress=progress,
        device=device,
    )
    return _fit(result.image, request.size)


def _diffuse(
    request: ImageRequest, models: ImageModels, progress: Progress | None, device: str, precision: str
) -> Image.Image:
    from animatica.device import resolve_device
    from animatica.images.pipelines import pick_dtype

    dev = resolve_device(device)
    options = {
        "device": dev,
        "dtype": pick_dtype(precision, dev),
        "attention_slicing": models.attention_slicing,
        "vae_tiling": models.vae_tiling,
    }
    steps = _Steps(progress)
    if request.operation == "upscale":
        return _upscale(_read(request.init_image), request.size, request, models, options, steps)
    loras = [(_lora_path(models, name), weight) for name, weight in request.loras]
    drawn = _draw(request, models, options, steps, loras)
    if request.operation == "inpaint":
        return _keep_unmasked(drawn, request)
    return _upscale(np.asarray(drawn), request.size, request, models, options, steps)


def _lora_path(models: ImageModels, name: str) -> Path:
    return models.lora_file(name)


def _draw(
    request: ImageRequest,
    models: ImageModels,
    options: dict[str, Any],
    steps: _Steps,
    loras: list[tuple[Path, float]],
) -> Image.Image:
    """The picture drawn near the model's native size, in the output's aspect ratio."""
    from animatica.images.pipelines import load_pipeline, loras_applied, use_scheduler

    kind, path, setting = _model_for(request, models)
    controlnet = models.require_controlnet(request.control) if kind == "controlnet" else None
    pipe = load_pipeline(kind, path, setting, controlnet=controlnet, **options)
    try:
        use_scheduler(pipe, request.scheduler)
        draw_w, draw_h = _draw_size(pipe, request.size)
        will_upscale = request.operation != "inpaint" and _model_upscale_planned(
            (draw_w, draw_h), request, models
        )
        later = request.steps if will_upscale else 0

        def on_step(pipe_: Any, index: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if index == 0:
                steps.phase(int(pipe_.num_timesteps), later)
            steps.report(index + 1)
            return tensors

        call: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative or None,
            "num_inference_steps": request.steps,
            "guidance_scale": request.guidance,
            "generator": torch.Generator("cpu").manual_seed(request.seed),
            "callback_on_step_end": on_step,
            "output_type": "pil",
        }
        if kind in ("text2img", "controlnet"):
            call.update(width=draw_w, height=draw_h)
        if kind == "controlnet":
            from animatica.images.control import condition_from_photo

            condition = condition_from_photo(_read(request.control_image), request.control)
            call["image"] = _fit(condition, (draw_w, draw_h))
            call["controlnet_conditioning_scale"] = request.control_scale
        if kind == "img2img":
            call.update(image=_fit(_read(request.init_image), (draw_w, draw_h)), strength=request.strength)
        if kind == "inpaint":
            call.update(
                image=_fit(_read(request.init_image), (draw_w, draw_h)),
                mask_image=_fit(_mask(request.mask), (draw_w, draw_h)),
                strength=request.strength,
                width=draw_w,
                height=draw_h,
            )
        with loras_applied(pipe, loras):
            return pipe(**call).images[0]
    finally:
        del pipe
        gc.collect()


def _model_for(request: ImageRequest, models: ImageModels) -> tuple[str, Path, str]:
    """(pipeline kind, model path, its setting) for a drawing operation."""
    diffusion = SLOT["diffusion"].setting
    if request.operation == "inpaint":
        # A dedicated inpainting model is better; a plain model still inpaints (blending its latents).
        if models.inpaint is not None:
            return "inpaint", models.require("inpaint"), SLOT["inpaint"].setting
        if models.diffusion is None:
            raise ImageModelMissing(
                f"Inpainting needs a model that is not configured: set {SLOT['inpaint'].setting} to "
                f"{SLOT['inpaint'].what} (or {diffusion} to a plain Stable Diffusion model)."
            )
        return "inpaint", models.require("diffusion"), diffusion
    if request.operation == "img2img":
        return "img2img", models.require("diffusion"), diffusion
    if request.control_image is not None:
        return "controlnet", models.require("diffusion"), diffusion
    return "text2img", models.require("diffusion"), diffusion


def _draw_size(pipe: Any, output: tuple[int, int]) -> tuple[int, int]:
    scale = int(pipe.vae_scale_factor)
    native = sizes.native_side(pipe.unet.config.sample_size, scale)
    multiple = scale * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    return sizes.generation_size(output, native, multiple)


def _model_upscale_planned(drawn: tuple[int, int], request: ImageRequest, models: ImageModels) -> bool:
    return models.upscale is not None and sizes.needs_model_upscale(drawn, request.size)


def _upscale(
    pixels: np.ndarray,
    size: tuple[int, int],
    request: ImageRequest,
    models: ImageModels,
    options: dict[str, Any],
    steps: _Steps,
) -> Image.Image:
    """``pixels`` at exactly ``size``: through the x4 model when configured and worth it, else Lanczos."""
    height, width = pixels.shape[:2]
    if models.upscale is None or not sizes.needs_model_upscale((width, height), size):
        return _fit(pixels, size)
    from animatica.images.pipelines import load_pipeline, use_scheduler

    # The model enlarges exactly 4x, so it is fed the picture at a quarter of the output (sides a
    # multiple of 8): the least work, and a large input never reaches its full-resolution UNet.
    quarter = (sizes.round_up(size[0] / 4, 8), sizes.round_up(size[1] / 4, 8))
    low = _fit(pixels, quarter)
    pipe = load_pipeline("upscale", models.require("upscale"), SLOT["upscale"].setting, **options)
    try:
        use_scheduler(pipe, request.scheduler)
        steps.phase(request.steps)
        image = pipe(
            prompt=request.prompt,
            negative_prompt=request.negative or None,
            image=low,
            num_inference_steps=request.steps,
            guidance_scale=request.guidance,
            generator=torch.Generator("cpu").manual_seed(request.seed),
            callback=lambda index, _t, _latents: steps.report(index + 1),
            callback_steps=1,
        ).images[0]
    finally:
        del pipe
        gc.collect()
    return _fit(image, size)


def _keep_unmasked(drawn: Image.Image, request: ImageRequest) -> Image.Image:
    """The redrawn picture at the output size, with everything outside the mask exactly the input's.

    The VAE does not give back a picture's own pixels, so without this the untouched part would come
    back slightly changed (and, enlarged from the native size, softer).
    """
    width, height = request.size
    original = np.asarray(_fit(_read(request.init_image), request.size), dtype=np.float32)
    redrawn = np.asarray(_fit(drawn, request.size), dtype=np.float32)
    mask = _fit(_mask(request.mask), request.size).convert("L")
    radius = max(1.0, MASK_FEATHER * min(width, height))
    # Grow the mask by the feather first, so the whole painted area is still fully redrawn.
    grown = mask.filter(ImageFilter.MaxFilter(2 * int(radius) + 1))
    soft = np.asarray(grown.filter(ImageFilter.GaussianBlur(radius / 2)), dtype=np.float32)[..., None] / 255.0
    blended = original * (1.0 - soft) + redrawn * soft
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def _mask(path: Path | None) -> Image.Image:
    """The inpainting mask as a 3-channel picture: white (any light paint) is redrawn, black kept."""
    pixels = _read(path)
    grey = pixels.max(axis=2)
    binary = np.where(grey >= 128, 255, 0).astype(np.uint8)
    if not binary.any():
        raise ImageRequestError("the mask is empty: paint the part to redraw in white")
    return Image.fromarray(np.repeat(binary[..., None], 3, axis=2))


def _read(path: Path | None) -> np.ndarray:
    from animatica.media.reader import read_image

    if path is None:
        raise ImageRequestError("a picture this operation needs was not given")
    return read_image(Path(path))


def _fit(picture: np.ndarray | Image.Image, size: tuple[int, int]) -> Image.Image:
    """``picture`` scaled and centre-cropped to (W, H) (Lanczos, aspect kept)."""
    pixels = np.asarray(picture.convert("RGB")) if isinstance(picture, Image.Image) else picture
    return Image.fromarray(fit_frame(np.ascontiguousarray(pixels), (size[1], size[0]), "crop"))
