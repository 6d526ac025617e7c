"""Queuing a face swap: a face photo and a video become a ``face_swap`` job.

A swap is submitted the way an animation is (`submit.store_uploads`): it counts against the
submission limit, both files are checked by their content under the user's plan (the photo
scaled to the plan's size, the video refused past its length or size), a refused submission
costs nothing and leaves nothing, and the credit is reserved with the job's row. The video's
length limit travels with the job in frames, as an animation's does.

The options are checked before any upload is read, so a face choice nobody knows costs no
upload check. A reference photo (for ``which=reference``) is checked like any picture and
turned into the person's identity embedding here, at submission, so the job stores 128 numbers
rather than a third photo, and a reference without a face is refused before anything is charged.
The face photo is looked at too, once its upload passed: a photo without a face, or with two
faces of similar size (which one is meant cannot be told), is refused before anything is
stored. A video without any face is the job's to find out (it is read during preparation): the
job then fails with that reason and the credit comes back.

Nothing is queued unless the user confirms that they have the right to use both faces
(``consent``); the confirmation (who, when, what they confirmed) is stored with the job's
options, so an operator can show it later. The job also records whether its frames carry the
visible "AI-generated" mark: the operator's setting at submission, so every segment of the job
agrees on it.
"""

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from animatica.errors import AnimaticaError
from animatica.jobs.face_swap import COST, NAME
from animatica.media.limits import MediaLimits
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Invalid
from animatica.service.plans import Plan, get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, rate_limits
from animatica.service.submit import CheckedUploads, queue_job, store_uploads
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.receive import receive, sanitize_filename
from animatica.service.uploads.validate import frame_limit
from animatica.settings import Settings
from animatica.swapping import SwapSettings

LABELS = ("The face photo", "The video")
CONSENT_STATEMENT = (
    "I have the right to use both faces: the face in the photo and the faces in the video "
    "(I am these people or have their permission)."
)
NO_CONSENT = (
    "Confirm that you have the right to use both faces (the photo's and the video's) before "
    "swapping: send consent=true."
)
ENGINE_TEXT = {
    "faceswap": (
        "Face landmarks (no model)",
        "Warps the photo's face onto the video's along 68 landmarks and blends it in; needs no weights.",
    ),
    "faceswap-onnx": (
        "Face-swap model (ONNX)",
        "This server's own identity-injection model paints the photo's identity onto each face.",
    ),
}


@dataclass(frozen=True)
class SwapForm:
    """What a user chooses about a swap (the upload fields aside)."""

    which: str = "largest"
    blend: str = "poisson"
    keep_eyes: bool = True
    keep_mouth: bool = True
    engine: str = "auto"
    consent: bool = False  # the user confirmed CONSENT_STATEMENT


def swap_engine_problem(settings: Settings, name: str) -> str | None:
    """Why the swap engine ``name`` cannot run on this server, or None when it can.

    The engine without weights always runs; the ONNX engine only where the operator's two model
    files are configured and in place (`jobs.engine_choice.swap_engine`).
    """
    from animatica.engines import DEFAULT_SWAP_ENGINE, ONNX_SWAP_ENGINE
    from animatica.jobs.engine_choice import swap_engine

    if name == DEFAULT_SWAP_ENGINE:
        return None
    if name == ONNX_SWAP_ENGINE and swap_engine(settings) == ONNX_SWAP_ENGINE:
        return None
    return f"the {name} engine has no models set up on this server"


def swap_engine_choices(settings: Settings) -> list[dict[str, str]]:
    """The swap engines this server can run, for a form; the one ``auto`` runs on first."""
    from animatica.engines import SWAP_ENGINES
    from animatica.jobs.engine_choice import swap_engine

    default = swap_engine(settings)
    names = [default, *(name for name in SWAP_ENGINES if name != default)]
    choices = []
    for name in names:
        if swap_engine_problem(settings, name) is None:
            label, hint = ENGINE_TEXT.get(name, (name, ""))
            choices.append({"id": name, "label": label, "hint": hint})
    return choices


def concrete_swap_engine(settings: Settings, requested: str) -> str:
    """The engine a swap asking for ``requested`` runs on here; Invalid (422) when it cannot run."""
    from animatica.engines import AUTO
    from animatica.jobs.engine_choice import swap_engine

    engine = swap_engine(settings) if requested == AUTO else requested
    problem = swap_engine_problem(settings, engine)
    if problem is not None:
        raise Invalid(f"{problem[:1].upper()}{problem[1:]}; choose another engine.")
    return engine


def consent_record(user: CurrentUser, now: datetime | None = None) -> dict[str, Any]:
    """What is kept of a user's confirmation that they may use both faces: who, when, and what."""
    moment = now or datetime.now(UTC)
    return {
        "user_id": user.id,
        "username": user.username,
        "at": moment.isoformat(timespec="seconds"),
        "statement": CONSENT_STATEMENT,
    }


def checked_options(form: SwapForm, *, has_reference: bool) -> SwapSettings:
    """The swap settings of ``form``; Invalid (422) naming what is wrong, before any upload is read."""
    from animatica.engines import choose_engine
    from animatica.face.swap import BLENDS
    from animatica.face.tracks import FaceChoice

    if not form.consent:
        raise Invalid(NO_CONSENT)
    try:
        choose_engine(form.engine, None, kind="swap")  # a name of a swap engine, or auto
    except AnimaticaError as error:
        raise Invalid(str(error)) from error
    try:
        choice = FaceChoice.parse(form.which)
    except AnimaticaError as error:
        raise Invalid(str(error)) from error
    if choice.mode == "reference" and not has_reference:
        raise Invalid("which=reference needs a reference photo of the person whose face is replaced.")
    if choice.mode != "reference" and has_reference:
        raise Invalid("A reference photo is only used with which=reference; leave it out or choose it.")
    if form.blend not in BLENDS:
        raise Invalid(f"Unknown blend {form.blend!r}: use {' or '.join(BLENDS)}.")
    return SwapSettings(
        which=str(choice),
        engine=form.engine,
        blend=form.blend,
        keep_eyes=form.keep_eyes,
        keep_mouth=form.keep_mouth,
    )


def submit_swap(
    ctx: ServiceContext,
    user: CurrentUser,
    face: UploadFile | None,
    video: UploadFile,
    form: SwapForm,
    *,
    reference: UploadFile | None = None,
    source_job: str | None = None,
) -> str:
    """Validate and queue a swap of the face in ``face`` into ``video``; returns the job's id.

    Without a ``face`` upload the face photo is the picture of the user's job ``source_job``.

    422 without consent, for a bad option, a refused upload, or a face or reference photo without
    one clear face; 402 without credit; 429 past the submission limit (every submission counts,
    refused or not).
    """
    from animatica.swapping import swap_options

    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    has_reference = reference is not None and bool(reference.filename)
    settings = checked_options(form, has_reference=has_reference)
    engine = concrete_swap_engine(ctx.settings, settings.engine)
    consent = consent_record(user)
    limits = MediaLimits.from_settings(ctx.settings)
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        reference_png = None
        if has_reference:
            assert reference is not None
            reference_png = _checked_reference(ctx, user, reference, Path(tmp))
        try:  # the reference person's identity, computed once here (fps comes with the video)
            options = swap_options(settings, reference=reference_png, fps=None, limits=limits, engine=engine)
        except AnimaticaError as error:
            raise Invalid(str(error)) from error

    def queue(checked: CheckedUploads) -> None:
        row = {
            **options,
            "source_name": checked.names[0],  # the user's name for the photo, in the job's messages
            "max_frames": checked.video.max_frames,
            "frame_rate": checked.video.fps,
            "consent": consent,
            "visible_watermark": ctx.settings.swap_visible_watermark,
        }
        if checked.video.fps:
            row["fps"] = float(checked.video.fps)  # what the landmark smoothing is tuned to
        queue_job(
            ctx,
            user,
            checked.plan,
            checked.job_id,
            engine,
            row,
            checked.names,
            checked.keys,
            checked.notes,
            kind=NAME,
            cost=COST,
        )

    def check_face(photo: Path, name: str) -> None:
        _one_face(photo, f"the face photo {name}", limits)

    return store_uploads(
        ctx, user, face, video, queue, labels=LABELS, check_source=check_face, source_job=source_job
    )


def _one_face(photo: Path, what: str, limits: MediaLimits) -> None:
    """Invalid (422) unless the checked photo shows one clear face (`face.tracks.single_face`)."""
    from animatica.face.analyzer import get_analyzer
    from animatica.face.tracks import single_face
    from animatica.media.reader import read_image

    try:
        single_face(read_image(photo, limits), get_analyzer(), what)
    except AnimaticaError as error:
        raise Invalid(str(error)) from error


def _checked_reference(ctx: ServiceContext, user: CurrentUser, upload: UploadFile, folder: Path) -> Path:
    """The reference photo, checked by content like any picture, as the PNG its check wrote."""
    name = sanitize_filename(upload.filename, "reference")
    label = f"The reference photo ({name})"
    receive(upload.file, folder / "reference.bin", ctx.settings.max_upload_bytes, label)
    image = upload_checks.check_picture(
        upload_checks.PictureUpload(
            folder / "reference.bin", label, folder / "reference.png", get_plan(user.plan_id)
        ),
        ctx.settings,
    )
    return image.path


def rerun_options(options: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """A swap's stored options for a new run under ``plan``: its length limit counted again at the
    video's measured rate (the plan may have changed since); the rest, the reference identity and
    the consent given for these same two files included, as they were."""
    rate = options.get("frame_rate")
    if rate:
        options = {**options, "max_frames": frame_limit(plan.max_duration_seconds, float(rate))}
    return options
