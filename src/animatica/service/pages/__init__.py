"""The web pages of the service: server-rendered templates, small scripts, cookie sessions.

`install` is the one call the app makes: it adds the page routes, serves ``/static`` and turns
the pages' own exceptions into redirects and HTML error pages.
"""

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from animatica.service.pages import account, create, edit, events, jobs, live, pictures, pricing, swap
from animatica.service.pages.problems import PageProblem, SignInRequired
from animatica.service.pages.views import STATIC_DIR, problem_response, sign_in_response

router = APIRouter(include_in_schema=False)
for _module in (account, create, edit, events, jobs, live, pictures, pricing, swap):
    router.include_router(_module.router)

# Upload requests need the large body limit of the API's upload routes.
UPLOAD_PATHS = ("/create", "/edit", "/swap", "/pictures")


def install(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    async def on_sign_in_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        return sign_in_response(request, error)

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, PageProblem)
        # Rendering reads the database (the header shows the balance): keep it off the event loop.
        return await run_in_threadpool(problem_response, request, request.app.state.ctx, error)

    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(PageProblem, on_problem)


__all__ = ["STATIC_DIR", "UPLOAD_PATHS", "install", "router"]
