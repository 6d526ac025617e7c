"""Rate limits on the endpoints that guess, create or queue: login, sign-up, refresh, submit.

Each of them is limited twice. Per client address, in a middleware that answers before the
request body is read, so a refused upload is never received nor parsed; and per account, where
the account is known (the username of a login, the user of a submission), so that many addresses
cannot share out guesses at one password or one account's submissions. A refusal is a 429 with
``Retry-After``; pages get their error page, scripts and the API a JSON ``detail``.

Counts are kept over a moving window, in memory or, when Redis is configured, in Redis, where
every app process behind a load balancer adds to the same counts. If Redis cannot be reached the
request is let through and the failure logged: refusing every login while a counter store is
down would hurt more than a short spell without limits.
"""

import hashlib
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from animatica.service.errors import ServiceError
from animatica.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from animatica.service.context import ServiceContext

log = logging.getLogger("animatica.service.ratelimit")

LOGIN, LOGIN_ACCOUNT = "login", "login-account"
SIGNUP, REFRESH = "signup", "refresh"
SUBMIT, SUBMIT_ACCOUNT = "submit", "submit-account"
KEY_PREFIX = "animatica-limits"
SYNC_RETRY_SECONDS = 10  # about what one short synchronous animation takes
_EXTRA_KEY = "rate_limits"
_SYNC_EXTRA_KEY = "sync_slots"
_BUILD_LOCK = threading.Lock()  # two first requests at once must not each build their own counts

# POST paths limited per client address, API and pages alike.
ADDRESS_RULES: dict[str, str] = {
    "/api/v0/auth/login": LOGIN,
    "/signin": LOGIN,
    "/api/v0/auth/signup": SIGNUP,
    "/signup": SIGNUP,
    "/api/v0/auth/refresh": REFRESH,
    "/api/v1/animations": SUBMIT,
    "/api/v0/animation/video": SUBMIT,
    "/create": SUBMIT,
    "/api/v1/edits": SUBMIT,
    "/edit": SUBMIT,
    "/api/v1/images": SUBMIT,
    "/api/v1/images/prompt": SUBMIT,
    "/pictures": SUBMIT,
    "/pictures/prompt": SUBMIT,
}
_RERUN_PATH = re.compile(r"^/jobs/[^/]+/rerun$")


class RetryLater(ServiceError):
    """A refusal that a client should retry after ``retry_after`` seconds (sent as Retry-After)."""

    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RateLimited(RetryLater):
    status_code = 429


class Busy(RetryLater):
    """The server is at a capacity bound it keeps to stay up; nothing is wrong with the request."""

    status_code = 503


@dataclass(frozen=True)
class Rule:
    items: tuple[RateLimitItem, ...]
    message: str


def shared_store_url(settings: Settings) -> str:
    """Where counts are shared between processes: the Redis setting, else a Redis broker, else nowhere."""
    if settings.redis_url:
        return settings.redis_url
    if settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return ""


def active_limit_settings(settings: Settings) -> list[str]:
    """The environment names of the rate limits that are on (an empty rate turns one off)."""
    names = [name for name in type(settings).model_fields if name.startswith("rate_limit_")]
    return [f"ANIMATICA_{name.upper()}" for name in names if getattr(settings, name)]


class RateLimits:
    """The limits of one app; `hit` counts a request and refuses it once a budget is spent."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        url = shared_store_url(settings)
        if storage is None:
            storage = (
                RedisStorage(url, key_prefix=KEY_PREFIX, wrap_exceptions=True) if url else MemoryStorage()
            )
        self.storage = storage
        self.shared = isinstance(storage, RedisStorage)
        self._limiter = MovingWindowRateLimiter(storage)
        self._rules = {
            LOGIN: _rule(settings.rate_limit_login, "Too many login attempts from your address"),
            LOGIN_ACCOUNT: _rule(
                settings.rate_limit_login_account, "Too many login attempts for this account"
            ),
            SIGNUP: _rule(settings.rate_limit_signup, "Too many sign-ups from your address"),
            REFRESH: _rule(settings.rate_limit_refresh, "Too many token refreshes from your address"),
            SUBMIT: _rule(settings.rate_limit_submit, "Too many animations submitted from your address"),
            SUBMIT_ACCOUNT: _rule(
                settings.rate_limit_submit_account, "You are submitting animations too quickly"
            ),
        }

    def hit(self, rule: str, key: str) -> None:
        """Count one request of `key` (an address or an account) under `rule`; RateLimited when over.

        Every window of the rule is counted, so a burst refused by the minute window still uses
        up the hour's budget: a client hammering past a refusal gains nothing.
        """
        spec = self._rules[rule]
        if not spec.items:
            return
        identity = hashlib.sha256(key.encode()).hexdigest()[:32]  # fixed size, any characters
        waits: list[float] = []
        try:
            for item in spec.items:
                if not self._limiter.hit(item, rule, identity):
                    reset_at = self._limiter.get_window_stats(item, rule, identity).reset_time
                    waits.append(reset_at - time.time())
        except StorageError as error:
            log.warning("rate-limit store unavailable; request let through", extra={"error": str(error)})
            return
        if waits:
            wait = max(1, math.ceil(max(waits)))
            raise RateLimited(f"{spec.message}; try again in {_duration(wait)}.", wait)

    def hit_address_rule(self, path: str, address: str) -> None:
        rule = address_rule(path)
        if rule is not None:
            self.hit(rule, address)


def _rule(rate: str, message: str) -> Rule:
    return Rule(tuple(parse_many(rate)) if rate else (), message)


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{math.ceil(seconds / 3600)} hours"


def address_rule(path: str) -> str | None:
    if path in ADDRESS_RULES:
        return ADDRESS_RULES[path]
    if _RERUN_PATH.match(path):
        return SUBMIT
    return None


def rate_limits(ctx: "ServiceContext") -> RateLimits:
    """The app's limits, built on first use from its settings and kept in its context."""
    with _BUILD_LOCK:
        found = ctx.extra.get(_EXTRA_KEY)
        if not isinstance(found, RateLimits):
            found = RateLimits(ctx.settings)
            ctx.extra[_EXTRA_KEY] = found
        return found


def install(app: "FastAPI", ctx: "ServiceContext") -> None:
    """Add the per-address middleware; a refused page post gets the pages' own error page."""
    # Imported here: the pages import this module (sign-in counts per account).
    from animatica.service.pages.problems import PageProblem
    from animatica.service.pages.views import problem_response

    def page_refusal(request: Request, refusal: RetryLater) -> Response:
        problem = PageProblem(refusal.status_code, str(refusal), "Too many requests")
        return problem_response(request, ctx, problem)

    sync_slots(ctx)
    app.add_middleware(RateLimitMiddleware, limits=rate_limits(ctx), page_refusal=page_refusal)


def client_address(scope: Scope) -> str:
    """The peer's address, which uvicorn replaces by X-Forwarded-For only for trusted proxies."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Refuses, before the body is read, POSTs to the limited paths once an address's budget is spent."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RateLimits,
        page_refusal: Callable[[Request, RetryLater], Response] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.page_refusal = page_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or address_rule(scope["path"]) is None:
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        try:
            if self.limits.shared:  # a network round trip: keep it off the event loop
                await run_in_threadpool(self.limits.hit_address_rule, scope["path"], address)
            else:
                self.limits.hit_address_rule(scope["path"], address)
        except RateLimited as refusal:
            response = await self._refusal(Request(scope), refusal)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _refusal(self, request: Request, refusal: RateLimited) -> Response:
        page = not request.url.path.startswith("/api/")
        if page and self.page_refusal is not None:
            response = await run_in_threadpool(self.page_refusal, request, refusal)
        else:
            response = JSONResponse({"detail": str(refusal)}, status_code=refusal.status_code)
        response.headers.update(refusal.headers)
        return response


class SyncSlots:
    """Admission to the synchronous animation endpoint, whose requests stay open until their job ends.

    Waiting costs no thread, but each open request still holds its uploads, a connection and a
    poll of the database; so one user may keep `per_user` of them open and everyone together
    `total`. A request over either is refused at once (429), before a credit is reserved.
    Counted per process, like the connections they bound: a server of N web processes holds up
    to N times as many.
    """

    def __init__(self, per_user: int, total: int) -> None:
        self.per_user = per_user
        self.total = total
        self._open: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        with self._lock:
            return sum(self._open.values())

    @contextmanager
    def hold(self, user_id: int) -> Iterator[None]:
        with self._lock:
            if self._open.get(user_id, 0) >= self.per_user:
                raise RateLimited(
                    "You are already waiting for an animation here; wait for it to finish, "
                    "or queue several at once with /api/v1/animations.",
                    SYNC_RETRY_SECONDS,
                )
            if sum(self._open.values()) >= self.total:
                raise RateLimited(
                    "Too many animations are being waited for right now; try again shortly, "
                    "or use /api/v1/animations, which answers at once.",
                    SYNC_RETRY_SECONDS,
                )
            self._open[user_id] = self._open.get(user_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._open[user_id] -= 1
                if not self._open[user_id]:
                    del self._open[user_id]


def sync_slots(ctx: "ServiceContext") -> SyncSlots:
    """The app's caps on open synchronous requests, kept in its context like its rate limits."""
    with _BUILD_LOCK:
        found = ctx.extra.get(_SYNC_EXTRA_KEY)
        if not isinstance(found, SyncSlots):
            found = SyncSlots(ctx.settings.sync_requests_per_user, ctx.settings.sync_requests_total)
            ctx.extra[_SYNC_EXTRA_KEY] = found
        return found
