"""Per-request metrics and the access log, as a plain ASGI middleware.

Starlette's ``@app.middleware("http")`` wraps every request in extra tasks and memory streams;
under 50 clients polling at once that overhead alone was a large share of the event loop's time,
so this counts requests directly on the ASGI messages instead.
"""

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from animatica.service.metrics import Metrics

log = logging.getLogger("animatica.service")


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")  # the template, never the raw path
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(elapsed)
            log.info(
                "request",
                extra={"method": method, "route": route, "status": status, "ms": round(elapsed * 1000, 1)},
            )
