"""The Face swap page: a face photo and a video, which face to replace, a consent box, one job.

The form posts to the same `submit_swap` the API uses, so consent, the upload checks, the face
checks, the plan's limits and the credit are the server's, decided in one place; the page shares
the Create page's pickers (``_upload_fields.html``), upload script (``create.js``) and answers
(``submission``), and adds only the face choice and the consent box (``swap.js``). Without script
the form posts normally and the server answers with a redirect to the job's page, or this page
with its error. As on the Create page, the photo may be one of the user's earlier pictures
(``/swap?from=<job>``), copied inside the store.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from animatica.errors import AnimaticaError
from animatica.jobs import kinds
from animatica.jobs.face_swap import NAME
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser
from animatica.service.errors import Invalid
from animatica.service.pages.create import ChosenPicture, _chosen, upload_context
from animatica.service.pages.problems import PageProblem
from animatica.service.pages.sessions import CsrfChecked, Viewer
from animatica.service.pages.submission import form_refused, job_started
from animatica.service.pages.views import render
from animatica.service.swaps import CONSENT_STATEMENT, SwapForm, submit_swap, swap_engine_choices

router = APIRouter(include_in_schema=False)

WHICH_MODES = ("largest", "all", "index", "reference")


def which_face(mode: str, index: str | None) -> str:
    """The face choice (``face.tracks.FaceChoice``) that the form's two fields describe."""
    if mode not in WHICH_MODES:
        raise Invalid("Choose which face of the video to replace.")
    if mode != "index":
        return mode
    text = (index or "").strip()
    if not text.isdigit():
        raise Invalid("Give the number of the face to replace: 1 for the leftmost face, 2 for the next…")
    number = int(text)
    if number < 1:
        raise Invalid("Faces are numbered from 1 (the leftmost face).")
    return f"index:{number - 1}"


def form_context(ctx: ServiceContext, user: CurrentUser) -> dict[str, object]:
    return {
        "engines": swap_engine_choices(ctx.settings),
        "cost": kinds.get(NAME).cost,
        "consent_statement": CONSENT_STATEMENT,
        "visible_watermark": ctx.settings.swap_visible_watermark,
        **upload_context(ctx, user),
    }


@router.get("/swap")
def swap_page(request: Request, ctx: Ctx, user: Viewer, chosen: ChosenPicture) -> Response:
    return render(request, ctx, "swap.html", user, error=None, chosen=chosen, **form_context(ctx, user))


@router.post("/swap", dependencies=[CsrfChecked])
def swap_submit(
    request: Request,
    ctx: Ctx,
    user: Viewer,
    source_image: Annotated[UploadFile | None, File()] = None,
    driving_video: Annotated[UploadFile | None, File()] = None,
    reference: Annotated[UploadFile | None, File()] = None,
    which: Annotated[str, Form()] = "largest",
    face_number: Annotated[str | None, Form()] = None,
    engine: Annotated[str, Form()] = "auto",
    consent: Annotated[bool, Form()] = False,
    source_job: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    has_upload = source_image is not None and bool(source_image.filename)
    try:
        if not has_upload and not source_job:
            raise PageProblem(422, "Choose a photo of the face to put in (JPG, PNG or WebP).")
        if driving_video is None or not driving_video.filename:
            raise PageProblem(422, "Choose the video whose face is replaced (MP4, MOV, AVI, WebM or GIF).")
        form = SwapForm(which=which_face(which, face_number), engine=engine, consent=consent)
        chosen = reference if which == "reference" else None
        job_id = submit_swap(
            ctx,
            user,
            source_image if has_upload else None,
            driving_video,
            form,
            reference=chosen,
            source_job=None if has_upload else source_job,
        )
    except AnimaticaError as error:
        earlier = None if has_upload else _chosen(ctx, user, source_job)
        return form_refused(request, ctx, user, error, "swap.html", chosen=earlier, **form_context(ctx, user))
    return job_started(request, ctx, user, job_id)
