"""Server-Sent Events for the job page: the job's status pushed as it changes.

The page listens with ``EventSource`` and falls back to polling ``/jobs/{id}/status`` when the
stream fails (a proxy that buffers, an old browser). A stream ends when the job is over or after
``STREAM_SECONDS``, so a forgotten tab does not hold a connection forever; the script then polls.
Status is read from the database in a worker thread, so waiting never blocks the event loop.
"""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from animatica.jobs import state
from animatica.service.animations import job_view, load_job
from animatica.service.deps import Ctx
from animatica.service.pages.sessions import Caller
from animatica.service.pages.views import eta_text, stage_label
from animatica.service.schemas import JobView

router = APIRouter(include_in_schema=False)
STREAM_SECONDS = 300.0
CHECK_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0


def sse_message(payload: dict[str, Any], event: str = "status") -> str:
    """One event in the text/event-stream format (JSON has no raw newlines, so one data line)."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


async def status_events(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    disconnected: Callable[[], Awaitable[bool]],
    *,
    check_seconds: float = CHECK_SECONDS,
    lifetime: float = STREAM_SECONDS,
    keepalive: float = KEEPALIVE_SECONDS,
) -> AsyncIterator[str]:
    """Send the status now and whenever it changes; stop when it is final, or at ``lifetime``."""
    last: dict[str, Any] | None = None
    started = quiet_since = anyio.current_time()
    while True:
        status = await fetch()
        if status != last:
            last = status
            quiet_since = anyio.current_time()
            yield sse_message(status)
            if status["status"] in state.FINAL:
                return
        elif anyio.current_time() - quiet_since >= keepalive:
            quiet_since = anyio.current_time()
            yield ": still here\n\n"  # a comment: keeps proxies from closing an idle stream
        if anyio.current_time() - started >= lifetime or await disconnected():
            return
        await anyio.sleep(check_seconds)


def status_payload(job: JobView) -> dict[str, Any]:
    """The API's job view plus the words the page shows, so the script holds no copy of them."""
    return {
        **job.model_dump(mode="json"),
        "stage_label": stage_label(job.stage),
        "eta_text": eta_text(job.eta_seconds),
    }


def page_status(ctx: Ctx, user_id: int, job_id: str) -> dict[str, Any]:
    return status_payload(job_view(load_job(ctx, user_id, job_id)))


@router.get("/jobs/{job_id}/events")
def job_events(request: Request, ctx: Ctx, user: Caller, job_id: str) -> StreamingResponse:
    page_status(ctx, user.id, job_id)  # 404 now, as a normal response, for another user's job

    async def fetch() -> dict[str, Any]:
        return await anyio.to_thread.run_sync(page_status, ctx, user.id, job_id)

    return StreamingResponse(
        status_events(fetch, request.is_disconnected, lifetime=STREAM_SECONDS),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
