"""/api/v1/edits: edit a still portrait (head pitch/yaw/roll, eye and lip opening) as a job.

An edit is a job of kind ``portrait_edit``; once queued it is followed, fetched, canceled and
deleted through ``/api/v1/animations/{id}`` like any other job, and its result is a PNG.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import JSONResponse

from animatica.service.deps import Ctx, Me
from animatica.service.edits import checked_edit, submit_edit
from animatica.service.routes.jobs import accepted

router = APIRouter(prefix="/api/v1", tags=["edits"])


@router.post("/edits", status_code=status.HTTP_202_ACCEPTED)
def create_edit(
    ctx: Ctx,
    user: Me,
    picture: Annotated[
        UploadFile | None, File(description="JPG, PNG or WebP portrait; or name an earlier job in from_job.")
    ] = None,
    from_job: Annotated[
        str | None, Form(description="Edit the picture of this earlier job of yours instead of an upload.")
    ] = None,
    pitch: Annotated[float, Form(description="Degrees added to the head's pitch (-20 to 20).")] = 0.0,
    yaw: Annotated[float, Form(description="Degrees added to the head's yaw (-30 to 30).")] = 0.0,
    roll: Annotated[float, Form(description="Degrees added to the head's roll (-20 to 20).")] = 0.0,
    eyes: Annotated[
        float | None, Form(description="Target eye-open ratio (0 closed to 0.8); absent keeps the eyes.")
    ] = None,
    lips: Annotated[
        float | None, Form(description="Target lip-open ratio (0 closed to 0.8); absent keeps the mouth.")
    ] = None,
    crop: Annotated[
        bool, Form(description="Find the face and paste the edit back into the whole picture (default).")
    ] = True,
) -> JSONResponse:
    edit = checked_edit(pitch=pitch, yaw=yaw, roll=roll, eyes=eyes, lips=lips)
    job_id = submit_edit(ctx, user, edit, picture=picture, from_job=from_job or None, crop=crop)
    return accepted(ctx, user.id, job_id)
