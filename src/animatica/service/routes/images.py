"""/api/v1/images: make a picture from a prompt (or paint over, enlarge or restyle one) as a job.

A picture is a job of kind ``image``; once queued it is followed, fetched (its result is a PNG, with
Range support), canceled and deleted through ``/api/v1/animations/{id}`` like any other job, and
it is listed in the History. ``/api/v1/images/options`` says what this server offers: sizes,
styles, schedulers, the operator's LoRA files and which models are configured or missing.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import JSONResponse

from animatica.service import images
from animatica.service.deps import Ctx, Me
from animatica.service.routes.jobs import accepted

router = APIRouter(prefix="/api/v1", tags=["images"])


@router.get("/images/options")
def image_options(ctx: Ctx, _user: Me) -> JSONResponse:
    return JSONResponse(images.offer(images.models_of(ctx)))


@router.post("/images", status_code=status.HTTP_202_ACCEPTED)
def create_image(
    ctx: Ctx,
    user: Me,
    prompt: Annotated[str, Form(description="What the picture shows.")] = "",
    operation: Annotated[
        str, Form(description="generate, img2img, inpaint (init_image + mask), upscale or style.")
    ] = "generate",
    negative: Annotated[str, Form(description="What the picture should not show.")] = "",
    size: Annotated[
        str, Form(description="A size preset (portrait, avatar, thumbnail, cover) or WIDTHxHEIGHT.")
    ] = "portrait",
    steps: Annotated[int, Form(description="Denoising steps (1 to 150).")] = 25,
    guidance: Annotated[float, Form(description="How closely to follow the prompt (guidance scale).")] = 7.5,
    seed: Annotated[int | None, Form(description="Makes the same picture again; absent: a new one.")] = None,
    scheduler: Annotated[
        str, Form(description="A scheduler of images/options; default: the model's.")
    ] = "default",
    style: Annotated[str, Form(description="A style preset of /api/v1/images/options.")] = "",
    loras: Annotated[
        list[str] | None, Form(description="LoRA files of images/options, each as NAME or NAME:WEIGHT.")
    ] = None,
    strength: Annotated[float, Form(description="How much of init_image to repaint (0 to 1).")] = 0.75,
    init_image: Annotated[
        UploadFile | None, File(description="JPG, PNG or WebP: the picture to start from.")
    ] = None,
    mask: Annotated[
        UploadFile | None, File(description="For inpaint: white where to repaint, black to keep.")
    ] = None,
    reference: Annotated[
        UploadFile | None, File(description="A photo whose pose and face guide the picture (ControlNet).")
    ] = None,
    style_image: Annotated[
        UploadFile | None, File(description="For style: the picture whose look init_image takes on.")
    ] = None,
) -> JSONResponse:
    form = images.ImageForm(
        operation=operation,
        prompt=prompt,
        negative=negative,
        size=size,
        steps=steps,
        guidance=guidance,
        seed=seed,
        scheduler=scheduler,
        style_preset=style,
        loras=list(loras or []),
        strength=strength,
    )
    pictures = images.Pictures.of(
        init_image=init_image, mask=mask, control_image=reference, style_image=style_image
    )
    return accepted(ctx, user.id, images.submit_image(ctx, user, form, images.models_of(ctx), pictures))


@router.post("/images/prompt")
def prompt_from_video(
    ctx: Ctx,
    user: Me,
    video: Annotated[
        UploadFile | None, File(description="The video the picture is for (kept nowhere).")
    ] = None,
    title: Annotated[str, Form(max_length=200, description="The video's title.")] = "",
    description: Annotated[str, Form(max_length=1000, description="The video's description.")] = "",
    kind: Annotated[
        str, Form(description="What the picture is for: thumbnail, avatar, cover or portrait.")
    ] = ("thumbnail"),
) -> JSONResponse:
    """A prompt to start from (edit it before creating the picture); costs no credit."""
    draft = images.prompt_for_video(
        ctx, user, images.models_of(ctx), video=video, title=title, description=description, kind=kind
    )
    return JSONResponse(draft)
