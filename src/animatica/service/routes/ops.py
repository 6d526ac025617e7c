"""Operations: liveness/readiness and Prometheus metrics.

Both answer anyone who can reach the server, so they say as little as possible: the health
check says only whether the service works (what failed, and why, goes to the log), and the
metrics, which describe traffic and jobs, need a token unless the operator serves them on a
separate address (``ANIMATICA_METRICS_BIND``, see ``app.serve``).
"""

import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from animatica.service.deps import Ctx
from animatica.service.errors import NotFound, Unauthorized

router = APIRouter(tags=["operations"])
log = logging.getLogger("animatica.service")


@router.get("/healthz")
def healthz(ctx: Ctx) -> JSONResponse:
    """200 when the database and the store answer, 503 otherwise."""
    healthy = True
    for name, probe in (("database", ctx.db.ping), ("storage", ctx.storage.check)):
        try:
            probe()
        except Exception as exc:
            healthy = False
            log.error("health check failed: %s", name, exc_info=exc, extra={"check": name})
    if healthy:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable"}, status_code=503)


@router.get("/metrics", include_in_schema=False)
def metrics(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Prometheus text format, for ``Authorization: Bearer <ANIMATICA_METRICS_TOKEN>`` only."""
    token = ctx.settings.metrics_token
    if not token:
        raise NotFound("Not Found")
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), token.encode()):
        raise Unauthorized("The metrics need the bearer token set in ANIMATICA_METRICS_TOKEN.")
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
