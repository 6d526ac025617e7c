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
Whether the face photo itself shows a face is the job's to find out: a photo without one fails
the job with that reason, and the credit comes back.
"""

import tempfile
from dataclasses import dataclass
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
from animatica.swapping import SwapSettings

LABELS = ("The face photo", "The video")


@dataclass(frozen=True)
class SwapForm:
    """What a user chooses about a swap (the upload fields aside)."""

    which: str = "largest"
    blend: str = "poisson"
    keep_eyes: bool = True
    keep_mouth: bool = True


def checked_options(form: SwapForm, *, has_reference: bool) -> SwapSettings:
    """The swap settings of ``form``; Invalid (422) naming what is wrong, before any upload is read."""
    from animatica.face.swap import BLENDS
    from animatica.face.tracks import FaceChoice

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
        which=str(choice), blend=form.blend, keep_eyes=form.keep_eyes, keep_mouth=form.keep_mouth
    )


def submit_swap(
    ctx: ServiceContext,
    user: CurrentUser,
    face: UploadFile,
    video: UploadFile,
    form: SwapForm,
    *,
    reference: UploadFile | None = None,
) -> str:
    """Validate and queue a swap of the face in ``face`` into ``video``; returns the job's id.

    422 for a bad option, a refused upload or a reference photo without one clear face; 402
    without credit; 429 past the submission limit (every submission counts, refused or not).
    """
    from animatica.engines import choose_engine
    from animatica.swapping import swap_options

    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    has_reference = reference is not None and bool(reference.filename)
    settings = checked_options(form, has_reference=has_reference)
    engine = choose_engine(settings.engine, None, kind="swap")
    limits = MediaLimits.from_settings(ctx.settings)
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        reference_png = None
        if has_reference:
            assert reference is not None
            reference_png = _checked_reference(ctx, user, reference, Path(tmp))
        try:  # the reference person's identity, computed once here (fps comes with the video)
            options = swap_options(settings, reference=reference_png, fps=None, limits=limits)
        except AnimaticaError as error:
            raise Invalid(str(error)) from error

    def queue(checked: CheckedUploads) -> None:
        row = {
            **options,
            "source_name": checked.names[0],  # the user's name for the photo, in the job's messages
            "max_frames": checked.video.max_frames,
            "frame_rate": checked.video.fps,
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

    return store_uploads(ctx, user, face, video, queue, labels=LABELS)


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
    video's measured rate (the plan may have changed since); the rest, the reference identity
    included, as they were."""
    rate = options.get("frame_rate")
    if rate:
        options = {**options, "max_frames": frame_limit(plan.max_duration_seconds, float(rate))}
    return options
