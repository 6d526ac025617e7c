"""/api/v1/animations: asynchronous animation jobs and the caller's own history.

Handlers only translate HTTP to the functions of ``animations`` (shared with the web pages) and
back; every look-up there is filtered by the caller's id.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from animatica.engines import AUTO
from animatica.jobs.options import JobOptions
from animatica.service import accounts, animations
from animatica.service.animations import job_view, load_job
from animatica.service.deps import Claims, Ctx, Me, active_user
from animatica.service.results import download, serve_file
from animatica.service.schemas import EngineList, JobPage, JobView
from animatica.service.schemas import Me as MeView
from animatica.service.submit import submit

router = APIRouter(prefix="/api/v1", tags=["animations"])


@router.get("/me")
def me(ctx: Ctx, user: Me) -> MeView:
    credits = accounts.balance(ctx.db, user.id)
    return MeView(id=user.id, username=user.username, plan=user.plan_id, credits=credits)


@router.get("/engines")
def list_engines(ctx: Ctx, _user: Me) -> EngineList:
    """The engines a job may name, and whether this server can run each (FOMM needs weights)."""
    return animations.engine_list(ctx.settings)


@router.post("/animations", status_code=status.HTTP_202_ACCEPTED)
def create_animation(
    ctx: Ctx,
    user: Me,
    source_image: Annotated[UploadFile, File(description="JPG, PNG or WebP picture to animate.")],
    driving_video: Annotated[UploadFile, File(description="MP4, MOV, AVI, WebM or GIF motion clip.")],
    engine: Annotated[str | None, Form()] = None,
    relative: Annotated[bool, Form()] = True,
    adapt_scale: Annotated[bool, Form()] = False,
    crop_face: Annotated[bool | None, Form()] = None,
    find_best_frame: Annotated[bool, Form()] = False,
    fit: Annotated[str, Form()] = "crop",
    region: Annotated[
        str, Form(description="liveportrait: what moves, all, exp, pose, lips or eyes.")
    ] = "all",
    stitching: Annotated[bool, Form(description="liveportrait: the stitching network.")] = True,
    driving_multiplier: Annotated[
        float, Form(description="liveportrait: how far the motion is carried (0 to 3).")
    ] = 1.0,
    eye_retargeting: Annotated[
        bool, Form(description="liveportrait: eye openness from the driving face's landmarks.")
    ] = False,
    lip_retargeting: Annotated[
        bool, Form(description="liveportrait: lip openness from the driving face's landmarks.")
    ] = False,
) -> JSONResponse:
    options = JobOptions(
        engine=engine or AUTO,
        relative=relative,
        adapt_scale=adapt_scale,
        crop_face=crop_face,
        find_best_frame=find_best_frame,
        fit=fit,
        region=region,
        stitching=stitching,
        driving_multiplier=driving_multiplier,
        eye_retargeting=eye_retargeting,
        lip_retargeting=lip_retargeting,
    )
    return accepted(ctx, user.id, submit(ctx, user, source_image, driving_video, options))


def accepted(ctx: Ctx, user_id: int, job_id: str) -> JSONResponse:
    """The answer to a job queued through the API, whatever its kind: 202, the job as
    ``/api/v1/animations/{id}`` shows it (where every kind is followed), and that URL."""
    view = job_view(load_job(ctx, user_id, job_id))
    return JSONResponse(
        view.model_dump(mode="json"),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"Location": f"/api/v1/animations/{job_id}"},
    )


@router.get("/animations")
def list_animations(
    ctx: Ctx,
    user: Me,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    page = animations.history(ctx, user.id, limit, offset)
    return JobPage(items=[job_view(job) for job in page.jobs], total=page.total, limit=limit, offset=offset)


@router.get("/animations/{job_id}")
async def get_animation(ctx: Ctx, claims: Claims, job_id: str) -> JobView:
    # Every open job page polls this, so the caller's check and the look-up share one trip
    # through the thread pool (other routes take ``Me`` and a second trip).
    def look_up() -> JobView:
        return job_view(load_job(ctx, active_user(ctx, claims).id, job_id))

    return await run_in_threadpool(look_up)


@router.get("/animations/{job_id}/result", response_class=Response)
def get_result(ctx: Ctx, user: Me, job_id: str, request: Request) -> Response:
    key = animations.result_key(ctx, user.id, job_id)
    return serve_file(request, ctx.storage, key, *download(job_id, key))


@router.post("/animations/{job_id}/cancel")
def cancel_animation(ctx: Ctx, user: Me, job_id: str) -> JobView:
    return job_view(animations.cancel(ctx, user.id, job_id))


@router.delete("/animations/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_animation(ctx: Ctx, user: Me, job_id: str) -> Response:
    """Delete a job and its files; a queued job is canceled (credit returned) first."""
    animations.remove(ctx, user.id, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
