"""Turning two uploads, or a finished job's stored inputs, into a queued job.

Refused uploads cost nothing and leave nothing behind: files are checked in a temporary folder
that is always removed, and stored files are deleted again if the credit cannot be reserved.
A re-run copies the stored inputs inside the store, so they never travel through the server.
"""

import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import UploadFile

from animatica.db import ledger
from animatica.errors import CheckpointError
from animatica.jobs import state
from animatica.jobs.engine_choice import concrete_engine
from animatica.jobs.face_swap import NAME as FACE_SWAP
from animatica.jobs.image import NAME as IMAGE
from animatica.jobs.lifecycle import announce
from animatica.jobs.live_recording import NAME as LIVE_RECORDING
from animatica.jobs.options import JobOptions
from animatica.jobs.portrait_edit import NAME as PORTRAIT_EDIT
from animatica.jobs.state import ANIMATION
from animatica.service.animations import load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Gone, Invalid
from animatica.service.pictures import store_picture
from animatica.service.plans import Plan, get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, rate_limits
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.checks import Upload
from animatica.service.uploads.receive import receive, sanitize_filename
from animatica.service.uploads.validate import DrivingVideo, frame_limit
from animatica.settings import Settings
from animatica.storage.base import MissingFile


def runnable(settings: Settings, options: JobOptions) -> JobOptions:
    """The options with the concrete engine this server runs them on; Invalid (422) when it cannot.

    ``auto`` is resolved here, once, so the job's record says what actually ran.
    """
    try:
        engine = concrete_engine(settings, options.engine)
    except CheckpointError as error:
        message = str(error)
        raise Invalid(message[:1].upper() + message[1:]) from error
    return options.but(engine=engine)


def _queue(
    ctx: ServiceContext,
    user: CurrentUser,
    plan: Plan,
    job_id: str,
    options: JobOptions,
    names: tuple[str, str],
    keys: tuple[str, str],
    notes: list[str],
) -> None:
    """Reserve the credit and record the job, then hand it to whoever runs jobs."""
    queue_job(ctx, user, plan, job_id, options.engine, options.to_row(), names, keys, notes)


def queue_job(
    ctx: ServiceContext,
    user: CurrentUser,
    plan: Plan,
    job_id: str,
    engine: str,
    options: dict[str, Any],
    names: tuple[str, str],
    keys: tuple[str | None, str | None],
    notes: list[str],
    *,
    kind: str = ANIMATION,
    cost: int = 1,
) -> None:
    """`_queue` for a job of any kind: its source and driving files' names and keys (None for a
    file the kind does without, such as a picture drawn from a prompt alone)."""
    with ctx.db.transaction() as session:
        state.create(
            session,
            job_id=job_id,
            user_id=user.id,
            engine=engine,
            options=options,
            priority=plan.priority,
            source_name=names[0],
            driving_name=names[1],
            source_key=keys[0],
            driving_key=keys[1],
            notes=notes,
            kind=kind,
            cost=cost,
        )
    announce(ctx.settings, ctx.db, job_id, plan.priority, ctx.runner.notify)


@dataclass(frozen=True)
class CheckedUploads:
    """Two uploads that passed their checks and are stored under the new job's keys."""

    plan: Plan
    job_id: str
    names: tuple[str, str]
    keys: tuple[str, str]
    video: DrivingVideo
    notes: list[str]


Labels = tuple[str, str]  # how the two files are named to the user, e.g. "The source image"
ANIMATION_LABELS: Labels = ("The source image", "The driving video")


def submit(
    ctx: ServiceContext,
    user: CurrentUser,
    source: UploadFile | None,
    driving: UploadFile,
    options: JobOptions,
    max_seconds: float | None = None,
    *,
    source_job: str | None = None,
) -> str:
    """Validate and queue a job; returns its id. Raises 402 before any work when out of credit.

    The picture is ``source``, or without one the picture of the user's job ``source_job``.

    Every submission, valid or not, counts against the account's submission limit (429 once it
    is spent): checking uploads costs the server work even when they are refused. The job queues
    at its owner's plan priority, whichever endpoint it came through.
    """
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    options = runnable(ctx.settings, options)

    def queue(checked: CheckedUploads) -> None:
        # The clip's length limit travels with the job in frames, so that decoding enforces it on
        # the frames it meets, not on what the header claimed.
        limited = options.but(max_frames=checked.video.max_frames, frame_rate=checked.video.fps)
        _queue(ctx, user, checked.plan, checked.job_id, limited, checked.names, checked.keys, checked.notes)

    return store_uploads(ctx, user, source, driving, queue, max_seconds=max_seconds, source_job=source_job)


def store_uploads(
    ctx: ServiceContext,
    user: CurrentUser,
    source: UploadFile | None,
    driving: UploadFile,
    queue: Callable[[CheckedUploads], None],
    *,
    max_seconds: float | None = None,
    labels: Labels = ANIMATION_LABELS,
    check_source: Callable[[Path, str], None] | None = None,
    source_job: str | None = None,
) -> str:
    """Check a picture and a video by their content under the user's plan, store them under a new
    job's keys and let ``queue`` record the job; returns the job's id.

    The caller has counted the submission. 402 before any work when out of credit; whatever
    fails after the files are stored (``queue`` included) deletes them again. ``check_source``
    (the checked picture's PNG, the user's name for it) may refuse the picture for what it
    shows, before anything is stored.

    Without a ``source`` upload the picture is that of the user's job ``source_job``, copied
    inside the store (`pictures.store_picture`: 404 for another user's job, 410 once it is gone).
    """
    upload = source if source is not None and source.filename else None
    if upload is None and not source_job:
        raise Invalid(f"{labels[0]} is missing: choose a JPG, PNG or WebP picture.")
    plan = get_plan(user.plan_id)
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id)
    source_name = sanitize_filename(upload.filename, "source") if upload is not None else ""
    driving_name = sanitize_filename(driving.filename, "driving")
    source_label = f"{labels[0]} ({source_name})"
    driving_label = f"{labels[1]} ({driving_name})"
    limit = ctx.settings.max_upload_bytes
    job_id = uuid.uuid4().hex
    keys: list[str] = []
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        folder = Path(tmp)
        note = None
        if upload is not None:
            receive(upload.file, folder / "source.bin", limit, source_label)
        receive(driving.file, folder / "driving.bin", limit, driving_label)
        if upload is not None:
            image, video = upload_checks.check(
                Upload(
                    folder / "source.bin",
                    source_label,
                    folder / "source.png",
                    folder / "driving.bin",
                    driving_label,
                    plan,
                    max_seconds,
                ),
                ctx.settings,
            )
            note = image.note
            if check_source is not None:
                check_source(image.path, source_name)
        else:
            alone = upload_checks.VideoUpload(folder / "driving.bin", driving_label, plan, max_seconds)
            video = upload_checks.check_video(alone, ctx.settings)
        source_key = f"jobs/{job_id}/source.png"
        driving_key = f"jobs/{job_id}/driving.{video.extension}"
        try:
            if upload is not None:
                ctx.storage.put_file(source_key, image.path)
            else:  # one of the user's pictures, copied in the store (checked when it was made)
                assert source_job is not None
                stored = store_picture(ctx, user.id, plan, source_key, upload=None, from_job=source_job)
                source_name = stored.name
            keys.append(source_key)
            if upload is None and check_source is not None:
                ctx.storage.get_file(source_key, folder / "source.png")
                check_source(folder / "source.png", source_name)
            ctx.storage.put_file(driving_key, video.path)
            keys.append(driving_key)
            queue(
                CheckedUploads(
                    plan,
                    job_id,
                    (source_name, driving_name),
                    (source_key, driving_key),
                    video,
                    [note] if note else [],
                )
            )
        except BaseException:
            for key in keys:
                ctx.storage.delete(key)
            raise
    return job_id


def plan_frame_limit(plan: Plan, options: JobOptions) -> int | None:
    """The most frames a new run of a stored clip may decode under ``plan``.

    The clip passed its first plan's checks; the plan may have changed since, so its length limit
    is counted again at the clip's measured rate. A clip that declared no rate keeps the limit
    its first run was checked against.
    """
    if options.frame_rate is None:
        return options.max_frames
    return frame_limit(plan.max_duration_seconds, options.frame_rate)


def rerun(ctx: ServiceContext, user: CurrentUser, job_id: str) -> str:
    """Queue a new job from one of the user's jobs: its stored inputs, copied in the store, and its
    options; returns the new job's id.

    It is a new submission: it counts against the submission limit, takes a credit and queues at
    the current plan's priority with the current plan's length limit. The engine must still run
    here (422 otherwise). Inputs already removed by the retention policy are 410 Gone.
    """
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    job = load_job(ctx, user.id, job_id)
    if job.kind == PORTRAIT_EDIT:
        from animatica.service.edits import rerun_edit

        return rerun_edit(ctx, user, job_id)
    if job.kind == LIVE_RECORDING:
        from animatica.service.live_recording import rerun_live_recording

        return rerun_live_recording(ctx, user, job_id)
    if job.kind == IMAGE:
        from animatica.service.images import models_of, rerun_image

        return rerun_image(ctx, user, job_id, models_of(ctx))
    gone = Gone(
        f"The uploaded files of this animation were deleted after "
        f"{ctx.settings.input_retention_hours:g} hours; upload them again."
    )
    if not job.source_key or not job.driving_key:
        raise gone
    plan = get_plan(user.plan_id)
    if job.kind == FACE_SWAP:
        from animatica.service.swaps import rerun_options

        engine, row, kind = job.engine, rerun_options(dict(job.options or {}), plan), FACE_SWAP
    else:
        options = runnable(ctx.settings, JobOptions.from_row(job.engine, job.options))
        options = options.but(max_frames=plan_frame_limit(plan, options))
        engine, row, kind = options.engine, options.to_row(), ANIMATION
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id)
    new_id = uuid.uuid4().hex
    copied: list[str] = []
    try:
        for old in (job.source_key, job.driving_key):
            new = f"jobs/{new_id}/{PurePosixPath(old).name}"
            try:
                ctx.storage.copy(old, new)
            except MissingFile as error:  # retention took it after we read the row
                raise gone from error
            copied.append(new)
        queue_job(
            ctx,
            user,
            plan,
            new_id,
            engine,
            row,
            (job.source_name, job.driving_name),
            (copied[0], copied[1]),
            [],
            kind=kind,
        )
    except BaseException:
        for key in copied:
            ctx.storage.delete(key)
        raise
    return new_id
