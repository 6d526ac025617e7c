"""Live sessions: ``POST /api/v1/live/sessions`` opens one, the ``/api/v1/live`` WebSocket runs it.

The Live page opens its sessions through ``POST /live/sessions`` (the page's cookie and CSRF
token instead of a Bearer token); both call the same `service.live.open_session`. The socket's
work is `service.live_socket.run_session`.
"""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, WebSocket, status
from fastapi.responses import JSONResponse

from animatica.service import live
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser, Me
from animatica.service.live_socket import run_session
from animatica.service.pages.sessions import Caller, CsrfChecked

router = APIRouter(prefix="/api/v1", tags=["live"])
page_router = APIRouter(include_in_schema=False)

Source = Annotated[
    UploadFile | None, File(description="JPG, PNG or WebP portrait; or name an earlier job in source_job.")
]
SourceJob = Annotated[
    str | None, Form(max_length=64, description="Animate the picture of this earlier job of yours instead.")
]
EngineName = Annotated[
    str, Form(description="landmarks (default); fomm or liveportrait where this server has their weights.")
]
Size = Annotated[int, Form(description="Side of the animated frames in pixels (128 to 512).")]
Format = Annotated[str, Form(description="How animated frames are sent: jpeg or webp.")]
Record = Annotated[bool, Form(description="Save the session as an MP4 into the History when it ends.")]


def _open(
    ctx: ServiceContext,
    user: CurrentUser,
    source: UploadFile | None,
    source_job: str | None,
    engine: str,
    size: int,
    fmt: str,
    record: bool,
) -> JSONResponse:
    opened = live.open_session(
        ctx,
        user,
        source=source,
        source_job=source_job or None,
        engine=engine,
        size=size,
        fmt=fmt,
        record=record,
    )
    return JSONResponse(
        opened.view(), status_code=status.HTTP_201_CREATED, headers={"Location": opened.view()["ws"]}
    )


@router.post("/live/sessions", status_code=status.HTTP_201_CREATED)
def open_live_session(
    ctx: Ctx,
    user: Me,
    source: Source = None,
    source_job: SourceJob = None,
    engine: EngineName = "landmarks",
    size: Size = live.DEFAULT_SIZE,
    format: Format = "jpeg",
    record: Record = False,
) -> JSONResponse:
    """Open a live session; connect its WebSocket (``ws``) within 60 seconds.

    409 when you already have a live session open, 429 (with Retry-After) when today's live
    minutes are used up: they renew at midnight UTC.
    """
    return _open(ctx, user, source, source_job, engine, size, format, record)


@page_router.post("/live/sessions", dependencies=[CsrfChecked])
def open_live_session_page(
    ctx: Ctx,
    user: Caller,
    source: Source = None,
    source_job: SourceJob = None,
    engine: EngineName = "landmarks",
    size: Size = live.DEFAULT_SIZE,
    format: Format = "jpeg",
    record: Record = False,
) -> JSONResponse:
    return _open(ctx, user, source, source_job, engine, size, format, record)


@router.websocket("/live")
async def live_socket(websocket: WebSocket, session: Annotated[str, Query(max_length=64)] = "") -> None:
    """Camera frames up, animated frames down (see ``animatica.live.wire``); authenticated by a Bearer
    header, the page's cookie from this site, or a first message ``{"type":"auth","token":…}``."""
    await run_session(websocket.app.state.ctx, websocket, session)
