"""``animatica image …`` and ``animatica models check``: thin wrappers over ``animatica.images``.

Model paths come from the settings (``ANIMATICA_DIFFUSION_MODEL`` …) unless a command names one, and
every command runs strictly offline: the Hugging Face libraries are told so before they are imported.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """The main command's error handling, looked up when a command runs: ``animatica.cli`` imports this
    module at its end, so importing it back here at import time would be circular."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from animatica.cli import user_errors as handled

        return handled(func)(*args, **kwargs)

    return wrapper


def fail(message: str) -> None:
    from animatica.cli import fail as cli_fail

    cli_fail(message)


def _settings(torch_threads: bool = False) -> Any:
    from animatica.cli import _settings as cli_settings

    return cli_settings(torch_threads)


image_app = typer.Typer(
    help="Create pictures with the operator's Stable Diffusion weights.", no_args_is_help=True
)
models_app = typer.Typer(help="The operator's picture models.", no_args_is_help=True)

ModelOpt = Annotated[
    Path | None,
    typer.Option(
        "--model", "-m", help="Diffusers folder or .safetensors file (default: the configured one)."
    ),
]
PromptOpt = Annotated[str, typer.Option("--prompt", "-p", help="What the picture shows.")]
NegativeOpt = Annotated[str, typer.Option("--negative", "-n", help="What it must not show.")]
SizeOpt = Annotated[str, typer.Option(help="WIDTHxHEIGHT or portrait, avatar, thumbnail, cover.")]
StepsOpt = Annotated[int, typer.Option(help="Denoising steps.")]
GuidanceOpt = Annotated[
    float, typer.Option(help="How closely to follow the prompt (classifier-free guidance).")
]
SeedOpt = Annotated[
    int | None, typer.Option(help="Seed; the same seed gives the same picture. Default: random.")
]
LoraOpt = Annotated[
    list[str] | None,
    typer.Option("--lora", help="LoRA file FILE[:WEIGHT] (repeatable; weight 1 by default)."),
]
SchedulerOpt = Annotated[
    str, typer.Option(help="default, ddim, pndm, euler, euler_a, dpm++, dpm++_karras, lms…")
]
StyleOpt = Annotated[str | None, typer.Option("--style", help="Style preset appended to the prompt.")]
UpscaleOpt = Annotated[
    Path | None,
    typer.Option("--upscale-model", help="x4 upscaler (default: the configured one, else Lanczos)."),
]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="The picture to write (.png).")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
PrecisionOpt = Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16 (CUDA).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _models(
    model: Path | None = None, upscale_model: Path | None = None, loras: list[str] | None = None
) -> Any:
    """The configured models, with what the command line names instead."""
    from animatica.images.models import ImageModels

    models = ImageModels.from_settings(_settings(torch_threads=True))
    changes: dict[str, Any] = {}
    if model is not None:
        changes["diffusion"] = model
    if upscale_model is not None:
        changes["upscale"] = upscale_model
    folders = {Path(text.rpartition(":")[0] if _has_weight(text) else text).parent for text in loras or []}
    if len(folders) > 1:
        fail("put the LoRA files of one command in one folder")
    if folders:
        changes["lora_dir"] = folders.pop()
    return replace(models, **changes)


def _has_weight(text: str) -> bool:
    _name, sep, weight = text.rpartition(":")
    if not sep:
        return False
    try:
        float(weight)
    except ValueError:
        return False
    return True


def _loras(loras: list[str] | None) -> tuple[tuple[str, float], ...]:
    from animatica.images.request import parse_lora

    parsed = []
    for text in loras or []:
        name, weight = parse_lora(text) if _has_weight(text) else (text, 1.0)
        parsed.append((Path(name).name, weight))
    return tuple(parsed)


class _Bar:
    """A tqdm bar of denoising steps on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run(request: Any, models: Any, output: Path, device: str, precision: str, quiet: bool) -> None:
    """Make the picture and write it (with its recipe in PNG text chunks); no file on failure."""
    import time

    from PIL.PngImagePlugin import PngInfo

    from animatica.images.pipelines import stay_offline
    from animatica.images.run import run_image_request

    if output.suffix.lower() != ".png":
        fail("the output must be a .png file")
    stay_offline()
    bar = _Bar(enabled=not quiet and sys.stderr.isatty())
    started = time.perf_counter()
    try:
        image = run_image_request(request, models, progress=bar, device=device, precision=precision)
    finally:
        bar.close()
    info = PngInfo()
    recipe = {
        "operation": request.operation,
        "prompt": request.prompt,
        "negative": request.negative,
        "seed": str(request.seed),
        "steps": str(request.steps),
        "guidance": f"{request.guidance:g}",
        "scheduler": request.scheduler,
        "loras": ", ".join(f"{name}:{weight:g}" for name, weight in request.loras),
    }
    for key, value in recipe.items():
        info.add_text(f"animatica:{key}", value)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    try:
        image.save(partial, format="PNG", pnginfo=info)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    typer.echo(f"wrote {output} ({image.width}x{image.height}, seed {request.seed}) in {seconds:.1f} s")


def _drawing(
    prompt: str,
    negative: str,
    steps: int,
    guidance: float,
    seed: int | None,
    scheduler: str = "default",
    lora: list[str] | None = None,
) -> dict[str, Any]:
    """The `ImageRequest` fields every drawing command takes alike: without ``--seed`` a fresh seed,
    which `_run` records in the PNG so the picture can be made again."""
    return {
        "prompt": prompt,
        "negative": negative,
        "steps": steps,
        "guidance": guidance,
        "seed": secrets.randbelow(2**31) if seed is None else seed,
        "scheduler": scheduler,
        "loras": _loras(lora),
    }


@image_app.command("generate")
@user_errors
def generate(
    prompt: PromptOpt,
    output: OutputOpt,
    model: ModelOpt = None,
    negative: NegativeOpt = "",
    size: SizeOpt = "portrait",
    steps: StepsOpt = 30,
    guidance: GuidanceOpt = 7.5,
    seed: SeedOpt = None,
    lora: LoraOpt = None,
    scheduler: SchedulerOpt = "default",
    style: StyleOpt = None,
    init: Annotated[Path | None, typer.Option(help="Start from this picture (image-to-image).")] = None,
    strength: Annotated[float, typer.Option(help="With --init: how far to move from it (0-1).")] = 0.75,
    control: Annotated[
        Path | None, typer.Option(help="Reference photo: its face guides the picture through a ControlNet.")
    ] = None,
    control_kind: Annotated[
        str, typer.Option(help="face (landmark drawing) or pose (OpenPose head).")
    ] = "face",
    controlnet: Annotated[
        Path | None, typer.Option(help="ControlNet for --control-kind (default: the configured one).")
    ] = None,
    upscale_model: UpscaleOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Draw a picture from a prompt (with --init: from a picture; with --control: posed like a photo)."""
    from animatica.images.request import ImageRequest, parse_size

    models = _models(model, upscale_model, lora)
    if controlnet is not None:
        models = replace(models, controlnets=((control_kind, controlnet),))
    request = ImageRequest(
        operation="img2img" if init is not None else "generate",
        size=parse_size(size),
        style_preset=style,
        init_image=init,
        strength=strength,
        control_image=control,
        control=control_kind,
        **_drawing(prompt, negative, steps, guidance, seed, scheduler, lora),
    )
    _run(request, models, output, device, precision, quiet)


@image_app.command("inpaint")
@user_errors
def inpaint(
    prompt: PromptOpt,
    source: Annotated[Path, typer.Option("--input", "-i", help="The picture to change.")],
    mask: Annotated[Path, typer.Option(help="Same-shaped picture: white where to redraw, black to keep.")],
    output: OutputOpt,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="Inpainting model (default: the configured one, else the diffusion model)."
        ),
    ] = None,
    negative: NegativeOpt = "",
    size: Annotated[
        str | None, typer.Option(help="WIDTHxHEIGHT or a preset (default: the input's size).")
    ] = None,
    steps: StepsOpt = 30,
    guidance: GuidanceOpt = 7.5,
    seed: SeedOpt = None,
    lora: LoraOpt = None,
    scheduler: SchedulerOpt = "default",
    strength: Annotated[float, typer.Option(help="1 redraws the masked part from scratch.")] = 1.0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Redraw the masked part of a picture from a prompt; the rest keeps its exact pixels."""
    from animatica.images.request import ImageRequest, parse_size

    models = _models(None, None, lora)
    if model is not None:
        models = replace(models, inpaint=model)
    request = ImageRequest(
        operation="inpaint",
        size=parse_size(size) if size else _picture_size(source),
        init_image=source,
        mask=mask,
        strength=strength,
        **_drawing(prompt, negative, steps, guidance, seed, scheduler, lora),
    )
    _run(request, models, output, device, precision, quiet)


@image_app.command("upscale")
@user_errors
def upscale(
    source: Annotated[Path, typer.Option("--input", "-i", help="The picture to enlarge.")],
    output: OutputOpt,
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="x4 upscaler (default: the configured one, else Lanczos)."),
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="WIDTHxHEIGHT or a preset (default: 4x the input).")
    ] = None,
    prompt: Annotated[
        str, typer.Option("--prompt", "-p", help="What the picture shows (helps the model).")
    ] = "",
    negative: NegativeOpt = "",
    steps: Annotated[int, typer.Option(help="Denoising steps of the x4 model.")] = 20,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance of the x4 model.")] = 9.0,
    seed: SeedOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Enlarge a picture to a size (the x4 model when configured and worth it, else Lanczos)."""
    from animatica.images.request import ImageRequest, parse_size

    models = _models(None, model)
    if size:
        target = parse_size(size)
    else:
        width, height = _picture_size(source)
        target = (4 * width, 4 * height)
    request = ImageRequest(
        operation="upscale",
        size=target,
        init_image=source,
        **_drawing(prompt, negative, steps, guidance, seed),
    )
    _run(request, models, output, device, precision, quiet)


def _picture_size(path: Path) -> tuple[int, int]:
    from animatica.media.reader import read_image

    pixels = read_image(path)
    return pixels.shape[1], pixels.shape[0]


@models_app.command("check")
@user_errors
def models_check(
    device: Annotated[str, typer.Option(help="Device to load on: cpu, cuda or cuda:N.")] = "cpu",
) -> None:
    """List the configured picture models and load each once: OK, missing or broken, and what to do."""
    from animatica.images.check import BROKEN, MISSING, check_models
    from animatica.images.models import ImageModels
    from animatica.images.pipelines import stay_offline

    stay_offline()
    models = ImageModels.from_settings(_settings(torch_threads=True))
    lines = check_models(models, device)
    for line in lines:
        typer.echo(line.text())
    bad = [line for line in lines if line.state in (MISSING, BROKEN)]
    if bad:
        raise typer.Exit(1)


@image_app.command("style")
@user_errors
def style_transfer(
    content: Annotated[Path, typer.Option("--content", "-c", help="The picture to repaint.")],
    style_picture: Annotated[Path, typer.Option("--style", "-s", help="The picture whose style to take.")],
    output: OutputOpt,
    vgg_weights: Annotated[
        Path | None,
        typer.Option(help="torchvision VGG19 or VGG16 weights (.pth); default: the configured ones."),
    ] = None,
    steps: Annotated[int, typer.Option(help="L-BFGS iterations.")] = 300,
    content_weight: Annotated[float, typer.Option(help="Weight of keeping the content's layout.")] = 1.0,
    style_weight: Annotated[float, typer.Option(help="Weight of matching the style's textures.")] = 1e6,
    size: Annotated[int, typer.Option(help="Longer side of the result (cost grows with its square).")] = 512,
    device: DeviceOpt = "auto",
    quiet: QuietOpt = False,
) -> None:
    """Repaint a picture in the style of another (Gatys et al. neural style transfer with VGG)."""
    from animatica.images.request import ImageRequest

    models = _models()
    if vgg_weights is not None:
        models = replace(models, vgg=vgg_weights)
    width, height = _picture_size(content)
    scale = min(1.0, size / max(width, height))  # never enlarged: a small picture keeps its size
    request = ImageRequest(
        operation="style",
        prompt="",
        size=(max(1, round(width * scale)), max(1, round(height * scale))),
        steps=steps,
        seed=0,
        init_image=content,
        style_image=style_picture,
        content_weight=content_weight,
        style_weight=style_weight,
    )
    _run(request, models, output, device, "fp32", quiet)


@image_app.command("prompt")
@user_errors
def prompt_from_video(
    video: Annotated[
        Path | None, typer.Option(help="The video the picture is for; its frames are captioned.")
    ] = None,
    title: Annotated[str, typer.Option(help="The video's title.")] = "",
    description: Annotated[str, typer.Option(help="The video's description (first sentence used).")] = "",
    kind: Annotated[str, typer.Option(help="thumbnail, avatar, cover or portrait.")] = "thumbnail",
    style: StyleOpt = None,
    caption_model: Annotated[
        Path | None, typer.Option(help="Captioning model folder (BLIP-style); default: the configured one.")
    ] = None,
    llm: Annotated[
        Path | None,
        typer.Option(help="Language model folder that rewrites the prompt (default: the configured one)."),
    ] = None,
    frames: Annotated[int, typer.Option(help="How many frames to caption, spread through the video.")] = 4,
    device: DeviceOpt = "auto",
) -> None:
    """Print a prompt for a video's picture (frame captions and title; rewritten by an LLM if configured).

    Only the prompt goes to stdout, so it can be passed on; the negative prompt and notes go to stderr.
    """
    from animatica.device import resolve_device
    from animatica.images.prompts import draft_prompt, styled_prompt

    models = _models()
    caption_model = caption_model or models.caption
    llm = llm or models.prompt_llm
    if caption_model is not None or llm is not None:
        from animatica.images.pipelines import stay_offline

        stay_offline()
    if video is not None and caption_model is None:
        typer.echo("no captioning model configured: the video's frames are not described", err=True)
    draft = draft_prompt(
        video=video,
        title=title,
        description=description,
        kind=kind,
        caption_model=caption_model,
        llm=llm,
        frames=frames,
        device=str(resolve_device(device)),
    )
    prompt, negative = draft.prompt, draft.negative
    if style:
        prompt, negative = styled_prompt(prompt, negative, style)
    typer.echo(prompt)
    typer.echo(f"negative: {negative}", err=True)
    source = "the language model's rewrite" if draft.source == "llm" else "the template"
    rejected = " (the language model's answer was not usable)" if draft.source == "template" and llm else ""
    typer.echo(f"from {source}{rejected}; {len(draft.captions)} caption(s)", err=True)
