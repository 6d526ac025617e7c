"""Queuing a live session's recording as a ``live_recording`` job, so it lands in the History.

The session's minutes were metered while it ran, so this submission takes no credit and does not
count against the submission limit: the kind's cost is 0, and its job goes through the same
lifecycle as any other (queued at the owner's plan priority, progress, cancel, result, retention).
The files are stored under the new job's own keys before its row exists, and deleted again if the
row cannot be written, so a failed submission leaves nothing behind.
"""

import uuid
from pathlib import Path, PurePosixPath

from animatica.jobs import state
from animatica.jobs.lifecycle import announce
from animatica.jobs.live_recording import LIVE_RECORDING, NAME
from animatica.service.animations import load_job
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Gone, Invalid
from animatica.service.plans import get_plan
from animatica.storage.base import MissingFile

DRIVING_NAME = "live session"
GONE = "The portrait of this live session was deleted by the retention policy; record the session again."


def submit_live_recording(
    ctx: ServiceContext,
    user: CurrentUser,
    source: Path | str,
    recording: Path,
    *,
    engine: str = "landmarks",
    source_name: str = "portrait.png",
) -> str:
    """Queue the conversion of ``recording`` (the finished `Recorder` file) into an MP4; returns the
    job's id. ``source`` is the session's portrait: a local file, or the storage key of a picture
    already stored (copied inside the store)."""
    if not Path(recording).is_file() or Path(recording).stat().st_size == 0:
        raise Invalid("The live session recorded no frames.")
    job_id = uuid.uuid4().hex
    source_key = f"jobs/{job_id}/source.png"
    driving_key = f"jobs/{job_id}/driving.mkv"
    stored: list[str] = []
    try:
        if isinstance(source, Path):
            ctx.storage.put_file(source_key, source)
        else:
            try:
                ctx.storage.copy(source, source_key)
            except MissingFile as error:
                raise Gone(GONE) from error
        stored.append(source_key)
        ctx.storage.put_file(driving_key, Path(recording))
        stored.append(driving_key)
        _queue(ctx, user, job_id, engine, source_name, (source_key, driving_key))
    except BaseException:
        for key in stored:
            ctx.storage.delete(key)
        raise
    return job_id


def rerun_live_recording(ctx: ServiceContext, user: CurrentUser, job_id: str) -> str:
    """Convert the same recording again, as a new job (free, like the first)."""
    earlier = load_job(ctx, user.id, job_id)
    if not earlier.source_key or not earlier.driving_key:
        raise Gone(GONE)
    new_id = uuid.uuid4().hex
    copied: list[str] = []
    try:
        for old in (earlier.source_key, earlier.driving_key):
            new = f"jobs/{new_id}/{PurePosixPath(old).name}"
            try:
                ctx.storage.copy(old, new)
            except MissingFile as error:
                raise Gone(GONE) from error
            copied.append(new)
        _queue(ctx, user, new_id, earlier.engine, earlier.source_name, (copied[0], copied[1]))
    except BaseException:
        for key in copied:
            ctx.storage.delete(key)
        raise
    return new_id


def _queue(
    ctx: ServiceContext, user: CurrentUser, job_id: str, engine: str, source_name: str, keys: tuple[str, str]
) -> None:
    plan = get_plan(user.plan_id)
    with ctx.db.transaction() as session:
        state.create(
            session,
            job_id=job_id,
            user_id=user.id,
            engine=engine,
            options={"live": True},
            priority=plan.priority,
            source_name=source_name,
            source_key=keys[0],
            driving_name=DRIVING_NAME,
            driving_key=keys[1],
            kind=NAME,
            cost=LIVE_RECORDING.cost,
        )
    announce(ctx.settings, ctx.db, job_id, plan.priority, ctx.runner.notify)
