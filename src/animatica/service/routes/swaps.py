"""/api/v1/swaps: put the face of one photo into every frame of a video, as a job.

A swap is a job of kind ``face_swap``; once queued it is followed, fetched (with Range),
canceled and deleted through ``/api/v1/animations/{id}`` like any other job, and its result is
an MP4 with the video's sound, marked as generated. It costs one credit per job, as an animation
does. Nothing is queued without ``consent=true``: the user's confirmation that they have the
right to use both faces, which is kept with the job.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import JSONResponse

from animatica.service.deps import Ctx, Me
from animatica.service.routes.jobs import accepted
from animatica.service.swaps import SwapForm, submit_swap

router = APIRouter(prefix="/api/v1", tags=["swaps"])


@router.post("/swaps", status_code=status.HTTP_202_ACCEPTED)
def create_swap(
    ctx: Ctx,
    user: Me,
    face: Annotated[UploadFile, File(description="JPG, PNG or WebP photo of the face to put in.")],
    video: Annotated[
        UploadFile, File(description="MP4, MOV, AVI, WebM or GIF video whose face is replaced.")
    ],
    which: Annotated[
        str,
        Form(
            description="Which faces of the video: largest (default), all, index:N (N-th from the left, "
            "from 0) or reference (the person in the reference photo)."
        ),
    ] = "largest",
    reference: Annotated[
        UploadFile | None, File(description="With which=reference: a photo of the person to replace.")
    ] = None,
    blend: Annotated[str, Form(description="poisson (default) or feather.")] = "poisson",
    keep_eyes: Annotated[
        bool, Form(description="Keep the video's eyes (default), so the gaze follows it.")
    ] = True,
    keep_mouth: Annotated[bool, Form(description="Keep the video's mouth interior (default).")] = True,
    engine: Annotated[str, Form(description="auto (default) or a swap engine this server runs.")] = "auto",
    consent: Annotated[
        bool,
        Form(
            description="Required, true: you confirm that you have the right to use both faces (the "
            "photo's and the video's). Stored with the job."
        ),
    ] = False,
) -> JSONResponse:
    form = SwapForm(
        which=which, blend=blend, keep_eyes=keep_eyes, keep_mouth=keep_mouth, engine=engine, consent=consent
    )
    job_id = submit_swap(ctx, user, face, video, form, reference=reference)
    return accepted(ctx, user.id, job_id)
