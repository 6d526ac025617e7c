"""The "Create a picture" page: a prompt (written by hand or from one of the user's videos), a
style, a size and the advanced choices become an ``image`` job; below, the user's pictures.

The form posts through the same `images.submit_image` the API uses, so the server's checks (the
content filter, the models this server has, the uploads' content, the credit) are the ones that
count. With script the page sends the form itself, with the mask painted over the starting picture
added as a PNG, and goes to the job's page; without script it posts normally. Each finished picture
offers "Animate this" (the Create page with the picture as its source), its download and "Use as
avatar".
"""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from animatica.db.models import Job
from animatica.errors import AnimaticaError
from animatica.jobs import state
from animatica.jobs.image import COST, NAME
from animatica.service import images
from animatica.service.animations import job_view
from animatica.service.avatars import avatar_key, avatar_version, set_avatar
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import Invalid, NotFound, status_for
from animatica.service.pages.create import IMAGE_EXTENSIONS, IMAGE_TYPES, VIDEO_EXTENSIONS, VIDEO_TYPES
from animatica.service.pages.problems import PageProblem, wants_json
from animatica.service.pages.sessions import Caller, CsrfChecked, Viewer
from animatica.service.pages.submission import form_refused, job_started
from animatica.service.pages.views import redirect, render
from animatica.service.schemas import JobView

router = APIRouter(include_in_schema=False)
GALLERY = 24  # latest pictures shown under the form

# What each model the page may need does for the user, by its key in `ImageModels.describe`.
FEATURES = {
    "diffusion": "Creating pictures from a prompt",
    "inpaint": "Repainting part of a picture",
    "upscale": "Enlarging with the upscaling model (without it, pictures are enlarged by resampling)",
    "controlnet": "Following the pose and face of a reference photo",
    "lora_dir": "LoRA styles",
    "caption": "Describing your video's frames for its prompt",
    "prompt_llm": "Rewriting the prompt from your video with a language model",
    "vgg": "Style transfer from a style picture",
}


def gallery(ctx: ServiceContext, user_id: int, limit: int = GALLERY) -> list[JobView]:
    """The user's latest picture jobs, newest first."""
    with ctx.db.read() as session:
        jobs = session.scalars(
            select(Job)
            .where(Job.user_id == user_id, Job.kind == NAME)
            .order_by(Job.created_at.desc(), Job.id)
            .limit(limit)
        ).all()
    return [job_view(job) for job in jobs]


def not_configured(models: Any) -> list[dict[str, str]]:
    """The models this server lacks, each with what it would enable and what the operator puts where
    (without the server's paths)."""
    from animatica.images.models import SLOT

    missing = []
    for row in models.describe():
        base = row.key.split(":", 1)[0]
        if row.state == "configured" or base not in FEATURES:
            continue
        what = SLOT[base].what
        if row.state == "missing":
            how = f"{row.setting} is set, but nothing is where it points: the operator puts {what} there."
        else:
            how = f"the operator sets {row.setting} to {what}."
        missing.append({"feature": FEATURES[base], "setting": row.setting, "how": how})
    return missing


def picked_loras(ticked: list[str], files: list[str], weights: list[float]) -> list[str]:
    """The ticked LoRA files as the API takes them (``NAME:WEIGHT``), each at the weight beside it:
    every row of the picker sends its file's name and weight, ticked or not, in the same order."""
    if len(files) != len(weights):
        raise Invalid("Each LoRA style needs one weight; reload the page and choose again.")
    weight_of = dict(zip(files, weights, strict=True))
    return [f"{name}:{weight_of.get(name, 1.0)!r}" for name in ticked if name]


def _context(ctx: ServiceContext, user: CurrentUser, values: dict[str, Any] | None = None) -> dict[str, Any]:
    models = images.models_of(ctx)
    offer = images.offer(models)
    return {
        "offer": offer,
        "missing": not_configured(models),
        "pictures": gallery(ctx, user.id),
        "values": {"prompt": "", "size": "portrait", "operation": "generate", **(values or {})},
        "image_accept": ",".join(IMAGE_TYPES + IMAGE_EXTENSIONS),
        "video_accept": ",".join(VIDEO_TYPES + VIDEO_EXTENSIONS),
        "cost": COST,
        "final": state.FINAL,
    }


@router.get("/pictures")
def pictures_page(request: Request, ctx: Ctx, user: Viewer) -> Response:
    return render(request, ctx, "pictures.html", user, error=None, **_context(ctx, user))


@router.post("/pictures", dependencies=[CsrfChecked])
def pictures_submit(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    prompt: Annotated[str, Form(max_length=4000)] = "",
    operation: Annotated[str, Form(max_length=16)] = "generate",
    negative: Annotated[str, Form(max_length=4000)] = "",
    size: Annotated[str, Form(max_length=32)] = "portrait",
    custom_size: Annotated[str, Form(max_length=32)] = "",
    steps: Annotated[int, Form()] = 25,
    guidance: Annotated[float, Form()] = 7.5,
    seed: Annotated[str, Form(max_length=20)] = "",
    scheduler: Annotated[str, Form(max_length=32)] = "default",
    style: Annotated[str, Form(max_length=32)] = "",
    loras: Annotated[list[str] | None, Form()] = None,
    lora_file: Annotated[list[str] | None, Form()] = None,
    lora_weight: Annotated[list[float] | None, Form()] = None,
    strength: Annotated[float, Form()] = 0.75,
    init_image: Annotated[UploadFile | None, File()] = None,
    mask: Annotated[UploadFile | None, File()] = None,
    reference: Annotated[UploadFile | None, File()] = None,
    style_image: Annotated[UploadFile | None, File()] = None,
) -> Response:
    values = {"prompt": prompt, "operation": operation, "negative": negative, "size": size, "style": style}
    try:
        seed_text = seed.strip()
        if seed_text and not seed_text.isdigit():
            raise Invalid("The seed is a whole number (or empty for a new picture each time).")
        form = images.ImageForm(
            operation=operation,
            prompt=prompt,
            negative=negative,
            size=custom_size.strip() if size == "custom" else size,
            steps=steps,
            guidance=guidance,
            seed=int(seed_text) if seed_text else None,
            scheduler=scheduler,
            style_preset=style,
            loras=picked_loras(loras or [], lora_file or [], lora_weight or []),
            strength=strength,
        )
        uploads = images.Pictures.of(
            init_image=init_image, mask=mask, control_image=reference, style_image=style_image
        )
        job_id = images.submit_image(ctx, user, form, images.models_of(ctx), uploads)
    except AnimaticaError as error:
        return form_refused(request, ctx, user, error, "pictures.html", **_context(ctx, user, values))
    return job_started(request, ctx, user, job_id)


@router.post("/pictures/prompt", dependencies=[CsrfChecked])
def prompt_from_video(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    video: Annotated[UploadFile | None, File()] = None,
    title: Annotated[str, Form(max_length=200)] = "",
    description: Annotated[str, Form(max_length=1000)] = "",
    kind: Annotated[str, Form(max_length=16)] = "thumbnail",
) -> Response:
    """ "Fill from my video": the prompt module's draft, put in the prompt box to edit."""
    try:
        draft = images.prompt_for_video(
            ctx, user, images.models_of(ctx), video=video, title=title, description=description, kind=kind
        )
    except AnimaticaError as error:
        return form_refused(request, ctx, user, error, "pictures.html", **_context(ctx, user))
    if wants_json(request):
        return JSONResponse(draft)
    values = {"prompt": draft["prompt"], "negative": draft["negative"]}
    return render(request, ctx, "pictures.html", user, error=None, **_context(ctx, user, values))


@router.post("/pictures/{job_id}/avatar", dependencies=[CsrfChecked])
def use_as_avatar(request: Request, ctx: Ctx, user: Viewer, job_id: str) -> Response:
    try:
        set_avatar(ctx, user.id, job_id)
    except NotFound as error:
        raise PageProblem(404, "There is no such picture in your account.", "Not found") from error
    except AnimaticaError as error:
        raise PageProblem(status_for(error), str(error), "Could not set the avatar") from error
    if wants_json(request):
        return JSONResponse({"avatar_url": f"/account/avatar?v={avatar_version(ctx, user.id)}"})
    return redirect("/pictures", "avatar_set")


@router.get("/account/avatar")
def avatar(ctx: Ctx, user: Caller) -> Response:
    """The signed-in user's avatar (404 without one); the URL's ``v`` changes with the picture."""
    key = avatar_key(user.id)
    size = avatar_version(ctx, user.id)
    if size is None:
        raise PageProblem(404, "You have no avatar yet.", "Not found")
    body = b"".join(ctx.storage.read_range(key, 0, size - 1))
    return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
