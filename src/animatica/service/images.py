"""Queuing a picture: a prompt, the user's choices and up to two pictures become an ``image`` job.

A picture is submitted the way an animation is: every submission counts against the submission
limit, uploads are checked by their content under the user's plan (and stored as PNG), a refused
submission costs nothing and leaves nothing, the credit is reserved with the job's row, and the
job queues at its owner's plan priority. What is particular to pictures is checked first, before
any upload is read: a prompt the content filter refuses (422, nothing stored, no credit), an
operation whose model this server does not have, a LoRA file that is not in the operator's folder.

The operator's models (`ImageModels`) are read from the settings when the app starts and passed
in; the job itself reads them again from its worker's settings.
"""

import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from animatica.db import ledger
from animatica.errors import AnimaticaError
from animatica.jobs.image import COST, ENGINE, NAME, build_request
from animatica.service.animations import load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Gone, Invalid
from animatica.service.plans import Plan, get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, rate_limits
from animatica.service.submit import queue_job
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.receive import receive, sanitize_filename
from animatica.storage.base import MissingFile

OPERATIONS = ("generate", "img2img", "inpaint", "upscale", "style")
# Which uploads each operation reads, in the job's two input slots: slot -> (request field, label).
SLOTS: dict[str, dict[str, tuple[str, str]]] = {
    "generate": {"driving": ("control_image", "The reference photo")},
    "img2img": {"source": ("init_image", "The starting picture")},
    "inpaint": {"source": ("init_image", "The starting picture"), "driving": ("mask", "The mask")},
    "upscale": {"source": ("init_image", "The picture to enlarge")},
    "style": {
        "source": ("init_image", "The picture to restyle"),
        "driving": ("style_image", "The style picture"),
    },
}
# The form's name of each upload, by request field.
UPLOAD_FIELDS = {
    "init_image": "init_image",
    "mask": "mask",
    "control_image": "reference",
    "style_image": "style_image",
}


@dataclass(frozen=True)
class ImageForm:
    """What a user chooses about a picture (the uploads aside), as the form or the API sends it."""

    operation: str = "generate"
    prompt: str = ""
    negative: str = ""
    size: str = "portrait"  # a preset name or WxH
    steps: int = 25
    guidance: float = 7.5
    seed: int | None = None  # None: a fresh one, recorded on the job so it can be made again
    scheduler: str = "default"
    style_preset: str = ""
    loras: list[str] = field(default_factory=list)  # "file.safetensors" or "file.safetensors:0.8"
    strength: float = 0.75


def checked_row(form: ImageForm, models: Any, *, seed: int, uploads: Iterable[str] = ()) -> dict[str, Any]:
    """The job row's options for ``form`` (request fields as JSON data); Invalid (422) for a wrong
    choice, before any upload is read. ``uploads``: the request fields the user sent a picture for.

    The prompt goes through the content filter first, so a refused one costs nothing at all.
    """
    from animatica.images.errors import ImageModelMissing, ImageRequestError, PromptRefused
    from animatica.images.request import parse_lora, parse_size
    from animatica.images.safety import check_prompt

    try:
        # Only the prompt, as the job checks it: a negative prompt names what must not be drawn.
        check_prompt(form.prompt, models.blocklist)
        loras = [parse_lora(value.strip()) for value in form.loras if value.strip()]
        for name, _weight in loras:
            models.lora_file(name)  # only files of the operator's folder, by name
        row: dict[str, Any] = {
            "operation": form.operation,
            "prompt": form.prompt.strip(),
            "negative": form.negative.strip(),
            "size": list(parse_size(form.size or "portrait")),
            "steps": int(form.steps),
            "guidance": float(form.guidance),
            "seed": int(seed),
            "scheduler": form.scheduler.strip() or "default",
            "style_preset": form.style_preset.strip() or None,
            "loras": [[name, weight] for name, weight in loras],
            "strength": float(form.strength),
        }
        lacking = missing_model(form.operation, models, reference="control_image" in uploads)
        if lacking is not None:
            raise Invalid(lacking)
        slots = SLOTS.get(form.operation, {})
        offered = {request_field for request_field, _label in slots.values()}
        for request_field in uploads:
            if request_field not in offered:
                name = UPLOAD_FIELDS[request_field]
                raise Invalid(f"The {form.operation} operation does not use a {name} picture; leave it out.")
        row["pictures"] = {slot: name for slot, (name, _label) in slots.items() if name in uploads}
        # The request's own rules, with the pictures' names standing for the files not yet read:
        # a missing picture or a number out of range is refused before any upload is.
        build_request(row, {slot: Path(name) for slot, name in row["pictures"].items()})
    except (PromptRefused, ImageRequestError, ImageModelMissing) as error:
        raise Invalid(_sentence(str(error))) from error
    return row


def missing_model(operation: str, models: Any, *, reference: bool = False) -> str | None:
    """Why this server cannot do ``operation`` (the model it lacks and the operator's setting for it),
    or None; said before anything is uploaded or charged, without the server's paths."""
    from animatica.images.models import SLOT

    def there(path: Path | None) -> bool:
        return path is not None and Path(path).exists()

    lacking = None
    if operation in ("generate", "img2img") and not there(models.diffusion):
        lacking = "diffusion"
    elif operation == "inpaint" and not (there(models.inpaint) or there(models.diffusion)):
        lacking = "inpaint"
    elif operation == "style" and not there(models.vgg):
        lacking = "vgg"
    elif reference and not there(models.controlnet("face")):
        lacking = "controlnet"
    if lacking is None:
        return None
    slot = SLOT[lacking]
    feature = slot.required_for[:1].upper() + slot.required_for[1:]
    return f"{feature} is not set up on this server: the operator sets {slot.setting} to {slot.what}."


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


@dataclass(frozen=True)
class Pictures:
    """The uploads of one submission: request field -> upload (absent ones left out)."""

    uploads: Mapping[str, UploadFile]

    @classmethod
    def of(cls, **uploads: UploadFile | None) -> "Pictures":
        return cls({name: up for name, up in uploads.items() if up is not None and up.filename})


def submit_image(
    ctx: ServiceContext,
    user: CurrentUser,
    form: ImageForm,
    models: Any,
    pictures: Pictures | None = None,
) -> str:
    """Validate and queue a picture; returns the new job's id.

    422 for a wrong choice, a refused prompt or a refused upload (nothing stored, nothing charged);
    402 without credit; 429 past the submission limit (every submission counts, refused or not).
    """
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    seed = form.seed if form.seed is not None else secrets.randbits(31)
    uploads = dict(pictures.uploads) if pictures is not None else {}
    row = checked_row(form, models, seed=seed, uploads=uploads)
    plan = get_plan(user.plan_id)
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id, COST)
    job_id = uuid.uuid4().hex
    slots = SLOTS[form.operation]
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        folder = Path(tmp)
        local: dict[str, Path] = {}
        names: dict[str, str] = {}
        for slot in row["pictures"]:
            request_field, label = slots[slot]
            upload = uploads[request_field]
            names[slot] = sanitize_filename(upload.filename, UPLOAD_FIELDS[request_field])
            local[slot] = _checked_picture(ctx, plan, upload, f"{label} ({names[slot]})", folder / slot)
        stores = {slot: partial(_put, ctx, path) for slot, path in local.items()}
        _queue(ctx, user, plan, job_id, row, stores, names)
    return job_id


def _put(ctx: ServiceContext, path: Path, key: str) -> None:
    ctx.storage.put_file(key, path)


def _checked_picture(ctx: ServiceContext, plan: Plan, upload: UploadFile, label: str, stem: Path) -> Path:
    """One upload, checked by content like any picture, as the PNG its check wrote."""
    received = stem.with_suffix(".bin")
    receive(upload.file, received, ctx.settings.max_upload_bytes, label)
    checked = upload_checks.check_picture(
        upload_checks.PictureUpload(received, label, stem.with_suffix(".png"), plan), ctx.settings
    )
    return checked.path


def _queue(
    ctx: ServiceContext,
    user: CurrentUser,
    plan: Plan,
    job_id: str,
    row: dict[str, Any],
    pictures: Mapping[str, Callable[[str], None]],
    names: Mapping[str, str],
) -> None:
    """Store the pictures under the job's keys (``pictures``: slot -> what writes that slot's picture
    at a key: an upload's PNG, or an earlier job's picture copied in the store), reserve the
    credit and queue the job; whatever fails after a file is stored deletes it again."""
    keys: dict[str, str] = {}
    try:
        for slot, store in pictures.items():
            keys[slot] = f"jobs/{job_id}/{slot}.png"
            store(keys[slot])
        title = (title_of(row), names.get("driving", ""))
        slots = (keys.get("source"), keys.get("driving"))
        queue_job(ctx, user, plan, job_id, ENGINE, row, title, slots, [], kind=NAME, cost=COST)
    except BaseException:
        for key in keys.values():
            ctx.storage.delete(key)
        raise


def title_of(row: Mapping[str, Any]) -> str:
    """How the History names a picture: the start of its prompt (the column holds 128 characters)."""
    text = " ".join(str(row.get("prompt") or "").split()) or f"{row.get('operation', 'picture')}"
    return text if len(text) <= 80 else text[:79].rstrip() + "…"


def rerun_image(ctx: ServiceContext, user: CurrentUser, job_id: str, models: Any) -> str:
    """The same picture again (same seed, same pictures) as a new job; the caller counted the
    submission. The prompt is checked again: the blocklist may have grown since."""
    earlier = load_job(ctx, user.id, job_id)
    row = dict(earlier.options or {})
    from animatica.images.safety import check_prompt

    try:
        check_prompt(str(row.get("prompt") or ""), models.blocklist)
    except AnimaticaError as error:
        raise Invalid(_sentence(str(error))) from error
    plan = get_plan(user.plan_id)
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id, COST)
    gone = Gone("The pictures of this job were deleted by the retention policy; upload them again.")
    earlier_keys = {"source": earlier.source_key, "driving": earlier.driving_key}
    pictures = {slot: earlier_keys.get(slot) for slot in row.get("pictures") or {}}
    if not all(pictures.values()):
        raise gone

    def copied(old: str, key: str) -> None:
        try:
            ctx.storage.copy(old, key)
        except MissingFile as error:  # retention took it after the row was read
            raise gone from error

    new_id = uuid.uuid4().hex
    stores = {slot: partial(copied, str(old)) for slot, old in pictures.items()}
    _queue(ctx, user, plan, new_id, row, stores, {"driving": earlier.driving_name})
    return new_id


def models_of(ctx: ServiceContext) -> Any:
    """The operator's image models, read once from the settings the app started with."""
    models = ctx.extra.get("image_models")
    if models is None:
        from animatica.images.models import ImageModels

        models = ctx.extra.setdefault("image_models", ImageModels.from_settings(ctx.settings))
    return models


def offer(models: Any) -> dict[str, Any]:
    """What a picture may be asked for on this server (the API's options and the page's form)."""
    from animatica.images.prompts import STYLE_PRESETS
    from animatica.images.request import MAX_LORAS, SCHEDULERS, SIZE_PRESETS

    return {
        "operations": list(OPERATIONS),
        "sizes": {name: list(size) for name, size in SIZE_PRESETS.items()},
        "styles": list(STYLE_PRESETS),
        "schedulers": list(SCHEDULERS),
        "loras": models.lora_names(),
        "max_loras": MAX_LORAS,
        # What the operator has set up, without the server's paths.
        "models": [
            {"key": m.key, "setting": m.setting, "state": m.state, "detail": m.detail}
            for m in models.describe()
        ],
    }


def prompt_for_video(
    ctx: ServiceContext,
    user: CurrentUser,
    models: Any,
    *,
    video: UploadFile | None = None,
    title: str = "",
    description: str = "",
    kind: str = "thumbnail",
) -> dict[str, Any]:
    """A prompt (and negative prompt) for a picture of ``kind`` for the user's video: captions of a
    few of its frames (where the operator has a captioning model) and its title and description
    through the prompt module's template, rewritten by the operator's language model when there is
    one. The video is checked like any upload and kept nowhere; the user edits the prompt after.

    It costs no credit, but counts against the submission limit: it decodes the video.
    """
    from animatica.images.prompts import KINDS, draft_prompt

    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    has_video = video is not None and bool(video.filename)
    if not has_video and not (title.strip() or description.strip()):
        raise Invalid("Choose a video, or give its title or description, to write a prompt from.")
    if kind not in KINDS:
        kind = "thumbnail"
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        checked = None
        if has_video:
            assert video is not None
            name = sanitize_filename(video.filename, "video")
            label = f"The video ({name})"
            received = Path(tmp) / "video.bin"
            receive(video.file, received, ctx.settings.max_upload_bytes, label)
            alone = upload_checks.VideoUpload(received, label, get_plan(user.plan_id))
            checked = upload_checks.check_video(alone, ctx.settings).path
        if models.caption is not None or models.prompt_llm is not None:
            from animatica.images.pipelines import stay_offline

            stay_offline()
        try:
            draft = draft_prompt(
                video=checked,
                title=title[:200],
                description=description[:1000],
                kind=kind,
                caption_model=models.caption,
                llm=models.prompt_llm,
                device="cpu",
            )
        except AnimaticaError as error:
            raise Invalid(_sentence(str(error))) from error
    return {
        "prompt": draft.prompt,
        "negative": draft.negative,
        "captions": list(draft.captions),
        "source": draft.source,
    }
