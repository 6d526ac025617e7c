"""Turning two uploads into a queued job: validate, store, reserve a credit, queue.

Refused uploads cost nothing and leave nothing behind: files are checked in a temporary folder
that is always removed, and stored files are deleted again if the credit cannot be reserved.
"""

import tempfile
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fastapi import UploadFile

from animatica.db import ledger
from animatica.errors import CheckpointError
from animatica.jobs import store
from animatica.jobs.engine_choice import REQUESTABLE, concrete_engine
from animatica.service import upload_checks
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import Invalid
from animatica.service.plans import get_plan
from animatica.service.ratelimit import SUBMIT_ACCOUNT, rate_limits
from animatica.service.upload_checks import Upload
from animatica.service.uploads import receive, sanitize_filename
from animatica.settings import Settings

FITS = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class JobOptions:
    engine: str
    relative: bool = True
    adapt_scale: bool = False
    crop_face: bool = False
    find_best_frame: bool = False
    fit: str = "crop"

    def check(self, settings: Settings) -> "JobOptions":
        """The options with a concrete engine that this server can run; Invalid (422) otherwise."""
        if self.engine not in REQUESTABLE:
            raise Invalid(f"Unknown engine {self.engine!r}; use one of {', '.join(REQUESTABLE)}.")
        if self.fit not in FITS:
            raise Invalid(f"Unknown fit {self.fit!r}; use one of {', '.join(FITS)}.")
        try:
            engine = concrete_engine(settings, self.engine)
        except CheckpointError as error:
            message = str(error)
            raise Invalid(message[:1].upper() + message[1:]) from error
        return replace(self, engine=engine)

    def pipeline_options(self) -> dict[str, Any]:
        return {
            "relative": self.relative,
            "adapt_scale": self.adapt_scale,
            "crop_face": self.crop_face,
            "find_best_frame": self.find_best_frame,
            "fit": self.fit,
        }


def submit(
    ctx: ServiceContext,
    user: CurrentUser,
    source: UploadFile,
    driving: UploadFile,
    options: JobOptions,
    max_seconds: float | None = None,
) -> str:
    """Validate and queue a job; returns its id. Raises 402 before any work when out of credit.

    Every submission, valid or not, counts against the account's submission limit (429 once it
    is spent): checking uploads costs the server work even when they are refused. The job queues
    at its owner's plan priority, whichever endpoint it came through.
    """
    rate_limits(ctx).hit(SUBMIT_ACCOUNT, str(user.id))
    options = options.check(ctx.settings)
    plan = get_plan(user.plan_id)
    with ctx.db.read() as session:
        ledger.require_credit(session, user.id)
    source_name = sanitize_filename(source.filename, "source")
    driving_name = sanitize_filename(driving.filename, "driving")
    limit = ctx.settings.max_upload_bytes
    job_id = uuid.uuid4().hex
    keys: list[str] = []
    with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
        folder = Path(tmp)
        receive(source.file, folder / "source.bin", limit, f"The source image ({source_name})")
        receive(driving.file, folder / "driving.bin", limit, f"The driving video ({driving_name})")
        image, video = upload_checks.check(
            Upload(
                folder / "source.bin",
                f"The source image ({source_name})",
                folder / "source.png",
                folder / "driving.bin",
                f"The driving video ({driving_name})",
                plan,
                max_seconds,
            ),
            ctx.settings,
        )
        source_key = f"jobs/{job_id}/source.png"
        driving_key = f"jobs/{job_id}/driving.{video.extension}"
        try:
            ctx.storage.put_file(source_key, image.path)
            keys.append(source_key)
            ctx.storage.put_file(driving_key, video.path)
            keys.append(driving_key)
            with ctx.db.transaction() as session:
                store.create(
                    session,
                    job_id=job_id,
                    user_id=user.id,
                    engine=options.engine,
                    # The clip's length limit travels with the job in frames, so that decoding
                    # enforces it on the frames it meets, not on what the header claimed.
                    options={**options.pipeline_options(), "max_frames": video.max_frames},
                    priority=plan.priority,
                    source_name=source_name,
                    driving_name=driving_name,
                    source_key=source_key,
                    driving_key=driving_key,
                    notes=[image.note] if image.note else [],
                )
        except BaseException:
            for key in keys:
                ctx.storage.delete(key)
            raise
    if ctx.settings.broker_url:  # distributed mode: Celery workers take it from the broker
        from animatica.jobs.distributed import enqueue_job

        enqueue_job(ctx.settings, ctx.db, job_id, plan.priority)
    else:
        ctx.runner.notify()
    return job_id
