"""A picture a user chose for some work: a fresh upload, or the picture of one of their jobs.

Portrait edits and live sessions both start from one picture, chosen either way. An upload is
checked as every upload is (content, size, pixel count by the user's plan) and stored as PNG;
the picture of an earlier job is copied inside the store, so trying several things with one
photo never uploads it again. Another user's job is not found, exactly as a missing one.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile

from animatica.service.animations import load_job, picture_key
from animatica.service.context import ServiceContext
from animatica.service.errors import Gone
from animatica.service.plans import Plan
from animatica.service.uploads import checks as upload_checks
from animatica.service.uploads.receive import receive, sanitize_filename
from animatica.storage.base import MissingFile


@dataclass(frozen=True)
class StoredPicture:
    name: str  # the name the user knows the picture by
    note: str | None = None  # what the upload checks changed (e.g. scaled down to the plan's size)


def store_picture(
    ctx: ServiceContext,
    user_id: int,
    plan: Plan,
    key: str,
    *,
    upload: UploadFile | None,
    from_job: str | None,
    what: str = "picture",
) -> StoredPicture:
    """Store the chosen picture at ``key``: exactly one of ``upload`` and ``from_job`` is given.

    Refusals (a bad upload, another user's job, a picture deleted by retention) leave nothing
    stored; ``what`` names the picture in messages ("The portrait (me.jpg) …").
    """
    if upload is not None:
        name = sanitize_filename(upload.filename, what)
        label = f"The {what} ({name})"
        with tempfile.TemporaryDirectory(prefix="animatica-upload-") as tmp:
            folder = Path(tmp)
            receive(upload.file, folder / "upload.bin", ctx.settings.max_upload_bytes, label)
            image = upload_checks.check_picture(
                upload_checks.PictureUpload(folder / "upload.bin", label, folder / "source.png", plan),
                ctx.settings,
            )
            ctx.storage.put_file(key, image.path)
        return StoredPicture(name, image.note)
    assert from_job is not None, "store_picture needs an upload or a job"
    earlier = load_job(ctx, user_id, from_job)
    gone = Gone("The picture of that job was deleted by the retention policy; upload it again.")
    picture = picture_key(earlier)
    if not picture:
        raise gone
    try:
        ctx.storage.copy(picture, key)
    except MissingFile as error:
        raise gone from error
    return StoredPicture(earlier.source_name)
