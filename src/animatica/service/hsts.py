"""Strict-Transport-Security on every response served over https.

Browsers only honour the header when it arrives over https, and sending it over plain http
would tell them nothing; so it follows the request's scheme, which behind a trusted proxy is
the one the proxy reports (uvicorn's proxy-headers handling rewrites it before this runs).
"""

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class StrictTransportMiddleware:
    def __init__(self, app: ASGIApp, max_age: int) -> None:
        self.app = app
        self.value = f"max-age={max_age}"
        self.enabled = max_age > 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or scope.get("scheme") != "https":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Strict-Transport-Security"] = self.value
            await send(message)

        await self.app(scope, receive, send_with_header)
