"""How a page's job form answers, whichever kind of job it starts.

Each form is posted by its page's script (which asks for JSON, so it can show the error in place
or follow the job) or, without script, by the browser itself (which needs a page: the form again
with its error, or a redirect to the job). Both answers are made here, so that every form keeps
the same contract with ``create.js``: 202 with the job's id, url and the credits left, or the
error's status with ``detail`` and any Retry-After.
"""

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from animatica.errors import AnimaticaError
from animatica.service.context import ServiceContext
from animatica.service.deps import CurrentUser
from animatica.service.errors import status_for
from animatica.service.pages.problems import wants_json
from animatica.service.pages.views import credits_of, redirect, render
from animatica.service.ratelimit import RetryLater


def job_started(
    request: Request, ctx: ServiceContext, user: CurrentUser, job_id: str, url: str = "", **extra: str
) -> Response:
    """``url``: where the job is followed (its job page unless the form's own page shows it);
    ``extra``: more addresses for the page's script."""
    url = url or f"/jobs/{job_id}"
    if wants_json(request):
        return JSONResponse(
            {"id": job_id, "url": url, **extra, "credits": credits_of(ctx, user)},
            status_code=202,
            headers={"Location": url},
        )
    return redirect(url)


def form_refused(
    request: Request,
    ctx: ServiceContext,
    user: CurrentUser,
    error: AnimaticaError,
    template: str,
    **context: object,
) -> Response:
    """The error as JSON, or ``template`` again with the error above the form (``context`` fills it)."""
    code = status_for(error)
    headers = error.headers if isinstance(error, RetryLater) else {}  # too many submissions
    if wants_json(request):
        return JSONResponse({"detail": str(error)}, status_code=code, headers=headers)
    page = render(request, ctx, template, user, status_code=code, error=str(error), **context)
    page.headers.update(headers)
    return page
