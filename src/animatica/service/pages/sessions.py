"""Browser sessions for the pages: a signed HttpOnly cookie, and CSRF protection for forms.

The API keeps Bearer tokens; a browser gets a cookie instead, so no script on a page can ever
read a credential. A page session is tied to a login "family" of the token service, so signing
out, or an administrator disabling the account, ends it exactly as it ends the API tokens.

Cookies authenticate every request a browser makes, including ones another site triggers, so
every state-changing page request must prove it came from one of our pages: it carries a
double-submit token (a random value kept in an HttpOnly cookie and repeated in the form or in
the ``X-CSRF-Token`` header) and, when the browser sends an ``Origin``, that origin must be ours.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

import jwt
from fastapi import Depends, Request, Response

from animatica.db.types import utcnow
from animatica.service.auth import ALGORITHM, AccessClaims
from animatica.service.context import ServiceContext
from animatica.service.deps import Ctx, CurrentUser, active_user
from animatica.service.errors import Unauthorized
from animatica.service.pages.problems import PageProblem, SignInRequired
from animatica.service.ratelimit import LOGIN_ACCOUNT, rate_limits
from animatica.settings import Settings

SESSION_COOKIE = "animatica_session"
CSRF_COOKIE = "animatica_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PAGE_TOKEN_TYPE = "page"
_EXTRA_KEY = "page_sessions"


class PageSessions:
    """Signs and reads page-session cookies with a key derived for this purpose only."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.resolved_secret_key().encode()
        # A key of its own: a page cookie can never be replayed as an API token, nor the reverse.
        self._key = hmac.new(secret, b"animatica/page-session/v1", hashlib.sha256).hexdigest()
        self._issuer = settings.token_issuer
        self.lifetime = settings.refresh_token_seconds
        self._https = settings.public_base_url.lower().startswith("https://")

    def issue(self, claims: AccessClaims) -> str:
        now = utcnow()
        payload = {
            "sub": str(claims.user_id),
            "sid": claims.family,
            "type": PAGE_TOKEN_TYPE,
            "iss": self._issuer,
            "iat": now,
            "exp": now + timedelta(seconds=self.lifetime),
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)

    def read(self, token: str) -> AccessClaims | None:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "sub", "sid", "type", "iss"]},
            )
            if claims.get("type") != PAGE_TOKEN_TYPE:
                return None
            return AccessClaims(user_id=int(claims["sub"]), family=str(claims["sid"]))
        except (jwt.PyJWTError, TypeError, ValueError):
            return None

    def secure(self, request: Request) -> bool:
        """Secure cookies whenever the site is reached over https (directly or per the settings)."""
        return self._https or request.url.scheme == "https"

    def set_cookie(self, response: Response, request: Request, name: str, value: str) -> None:
        response.set_cookie(
            name,
            value,
            max_age=self.lifetime,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.secure(request),
        )


def page_sessions(ctx: ServiceContext) -> PageSessions:
    found = ctx.extra.get(_EXTRA_KEY)
    if not isinstance(found, PageSessions):
        found = PageSessions(ctx.settings)
        ctx.extra[_EXTRA_KEY] = found
    return found


def sign_in(ctx: ServiceContext, request: Request, response: Response, username: str, password: str) -> None:
    """Check the credentials (raises Unauthorized/Forbidden) and put the session cookie on `response`.

    Attempts count against the username's login limit, which the API's login shares, so the
    form is no way around it (RateLimited, a 429, once it is spent).
    """
    rate_limits(ctx).hit(LOGIN_ACCOUNT, username)
    pair = ctx.tokens.login(ctx.db, username, password)
    # The login's family names this browser session; the refresh token is simply never handed out.
    claims = ctx.tokens.decode_access(pair.access_token)
    sessions = page_sessions(ctx)
    sessions.set_cookie(response, request, SESSION_COOKIE, sessions.issue(claims))
    # A fresh CSRF token on every sign-in, so one planted before it is worthless afterwards.
    sessions.set_cookie(response, request, CSRF_COOKIE, secrets.token_urlsafe(32))


def sign_out(ctx: ServiceContext, request: Request, response: Response) -> None:
    """Revoke the login family (its API tokens die too) and clear the cookie."""
    claims = _claims(ctx, request)
    if claims is not None:
        with ctx.db.transaction() as session:
            ctx.tokens.revoke_family(session, claims.family)
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="lax")


def _claims(ctx: ServiceContext, request: Request) -> AccessClaims | None:
    token = request.cookies.get(SESSION_COOKIE)
    return page_sessions(ctx).read(token) if token else None


def viewer_or_none(ctx: Ctx, request: Request) -> CurrentUser | None:
    """The signed-in user, or None for a missing, forged, expired or signed-out session."""
    claims = _claims(ctx, request)
    if claims is None:
        return None
    try:
        return active_user(ctx, claims)
    except Unauthorized:
        return None


def require_viewer(
    user: Annotated[CurrentUser | None, Depends(viewer_or_none)], request: Request
) -> CurrentUser:
    """Pages need a signed-in user; anyone else is sent to sign in and brought back afterwards."""
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return user


def require_caller(user: Annotated[CurrentUser | None, Depends(viewer_or_none)]) -> CurrentUser:
    """Script calls from the pages (status polling) get a 401 rather than a redirect."""
    if user is None:
        raise Unauthorized("Your session has ended; sign in again.")
    return user


Viewer = Annotated[CurrentUser, Depends(require_viewer)]
MaybeViewer = Annotated[CurrentUser | None, Depends(viewer_or_none)]
Caller = Annotated[CurrentUser, Depends(require_caller)]


def csrf_token(request: Request) -> tuple[str, bool]:
    """The browser's CSRF token, and whether it is new (then it must be set as a cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 128:
        return existing, False
    cached = getattr(request.state, "new_csrf", None)
    if cached is None:
        cached = secrets.token_urlsafe(32)
        request.state.new_csrf = cached
    return cached, True


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request that did not come from one of our own pages."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc.lower() != (request.headers.get("host") or "").lower():
            raise PageProblem(403, "This form was sent from another site and was refused.", "Request refused")
    expected = request.cookies.get(CSRF_COOKIE) or ""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            value = (await request.form()).get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise PageProblem(403, "This form has expired; reload the page and try again.", "Form expired")


CsrfChecked = Depends(check_csrf)


def safe_next(target: str | None, default: str = "/create") -> str:
    """Only same-site paths may be redirect targets after signing in (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def signin_url(next_url: str) -> str:
    return f"/signin?next={quote(safe_next(next_url), safe='/')}"
