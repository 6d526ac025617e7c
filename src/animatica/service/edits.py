"""Queuing a portrait edit: an uploaded picture, or the picture of one of the user's earlier jobs,
plus the edit's numbers, become a ``portrait_edit`` job.

The same rules as an animation hold: every submission counts against the submission limit, a
refused upload costs nothing and leaves nothing, the credit is reserved with the job's row, and
the job queues at its owner's plan priority. Editing the picture of an earlier job copies that
picture inside the store, so trying several edits of one photo never uploads it again (and the
worker, which keeps the photos it prepared, recognises it by its bytes).
"""

import uuid

from fastapi import UploadFile

from animatica.db import ledger
from animatica.jobs import state
from animatica.jobs.lifecycle import announce
from animatica.jobs.portrait_edit import ENGINE, NAME, problem
from animatica.liveportrait.edit_options import InvalidEdit, PortraitEdit
from animatica.service.animations import load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Invalid
from animatica.service.pictures import store_picture
from animatica.service.plans import get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, rate_limits
from animatica.settings import Settings


def available(settings: Settings) -> bool:
    return problem(settings) is None


def checked_edit(**values: object) -> PortraitEdit:
    """The edit's numbers as a `PortraitEdit`; Invalid (422) naming the field that is out of range."""
    try:
        return PortraitEdit.from_row(values)
    except InvalidEdit as error:
        raise Invalid(str(error)) from error


def submit_edit(
    ctx: ServiceContext,
    user: CurrentUser,
    edit: PortraitEdit,
    *,
    picture: UploadFile | None = None,
    from_job: str | None = None,
    crop: bool = True,
) -> str:
    """Validate and queue an edit of ``picture`` (or of the picture of job ``from_job``); returns the
    new job's id. 422 when this server cannot edit, 402 without credit, 410 when the earlier job's
    picture was deleted by the retention policy."""
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    return queue_edit(ctx, user, edit, picture=picture, from_job=from_job, crop=crop)


def rerun_edit(ctx: ServiceContext, user: CurrentUser, job_id: str) -> str:
    """The same edit of the same picture again, as a new job (the caller counted the submission)."""
    earlier = load_job(ctx, user.id, job_id)
    edit = checked_edit(**dict(earlier.options or {}))
    return queue_edit(ctx, user, edit, from_job=job_id, crop=bool((earlier.options or {}).get("crop", True)))


def queue_edit(
    ctx: ServiceContext,
    user: CurrentUser,
    edit: PortraitEdit,
    *,
    picture: UploadFile | None = None,
    from_job: str | None = None,
    crop: bool = True,
) -> str:
    """`submit_edit` once the submission is counted."""
    reason = problem(ctx.settings)
    if reason is not None:
        raise Invalid(reason[:1].upper() + reason[1:])
    has_picture = picture is not None and bool(picture.filename)
    if not has_picture and not from_job:
        raise Invalid("Choose a picture to edit (JPG, PNG or WebP).")
    plan = get_plan(user.plan_id)
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id)
    job_id = uuid.uuid4().hex
    key = f"jobs/{job_id}/source.png"
    stored = store_picture(
        ctx, user.id, plan, key, upload=picture if has_picture else None, from_job=from_job, what="picture"
    )
    name, notes = stored.name, [stored.note] if stored.note else []
    try:
        with ctx.db.transaction() as session:
            state.create(
                session,
                job_id=job_id,
                user_id=user.id,
                engine=ENGINE,
                options={**edit.to_row(), "crop": crop},
                priority=plan.priority,
                source_name=name,
                source_key=key,
                notes=notes,
                kind=NAME,
            )
    except BaseException:
        ctx.storage.delete(key)
        raise
    announce(ctx.settings, ctx.db, job_id, plan.priority, ctx.runner.notify)
    return job_id
