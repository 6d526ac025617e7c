"""A user's avatar: one small square picture, chosen from the pictures of their jobs.

The avatar lives in the store under a key made from the user's id, so an account needs no column
for it and deleting the picture's job leaves the avatar in place. It is cut to a centred square
and scaled down when chosen, so the header never loads a channel cover to show 32 pixels.
"""

import tempfile
from pathlib import Path

from PIL import Image

from animatica.service.animations import load_job, picture_key
from animatica.service.context import ServiceContext
from animatica.service.errors import Gone
from animatica.storage.base import StorageError

SIDE = 256  # pixels; the header shows it at 32 CSS px, so 256 stays sharp on any screen


def avatar_key(user_id: int) -> str:
    return f"avatars/{user_id}.png"


def set_avatar(ctx: ServiceContext, user_id: int, job_id: str) -> None:
    """Make the picture of the user's job ``job_id`` their avatar; 404 for another user's job, 410
    once the picture is gone."""
    job = load_job(ctx, user_id, job_id)
    key = picture_key(job)
    gone = Gone("The picture of that job is no longer kept; choose another one.")
    if not key:
        raise gone
    with tempfile.TemporaryDirectory(prefix="animatica-avatar-") as tmp:
        picture, avatar = Path(tmp) / "picture.png", Path(tmp) / "avatar.png"
        try:
            ctx.storage.get_file(key, picture)
        except StorageError as error:
            raise gone from error
        with Image.open(picture) as image:
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.convert("RGB").crop((left, top, left + side, top + side))
            square.resize((min(SIDE, side),) * 2, Image.Resampling.LANCZOS).save(avatar, format="PNG")
        ctx.storage.put_file(avatar_key(user_id), avatar)


def avatar_version(ctx: ServiceContext, user_id: int) -> int | None:
    """A number that changes when the avatar does (for the header's image URL), None without one."""
    try:
        return ctx.storage.size(avatar_key(user_id))
    except StorageError:
        return None
