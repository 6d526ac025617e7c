"""/api/v0/auth: sign-up, login, token refresh and logout.

Sign-up, login and refresh are limited per client address before the body is read
(``ratelimit.RateLimitMiddleware``); a login is also limited per username, here, whatever the
address it comes from.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from animatica.service import accounts
from animatica.service.auth import TokenPair
from animatica.service.deps import Ctx
from animatica.service.errors import Unauthorized
from animatica.service.ratelimit import LOGIN_ACCOUNT, rate_limits
from animatica.service.schemas import Credentials, LoginBody, LogoutBody, RefreshBody, Tokens

router = APIRouter(prefix="/api/v0/auth", tags=["auth"])
_optional_bearer = HTTPBearer(auto_error=False)


def _tokens(pair: TokenPair) -> Tokens:
    return Tokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        access_expires_in=pair.access_expires_in,
        refresh_expires_in=pair.refresh_expires_in,
    )


@router.post("/signup", status_code=status.HTTP_201_CREATED)
def signup(body: Credentials, ctx: Ctx) -> dict[str, object]:
    accounts.signup(ctx.db, body.username, body.password, ctx.settings.free_credits)
    return {}


@router.post("/login")
def login(body: LoginBody, ctx: Ctx) -> Tokens:
    rate_limits(ctx).hit(LOGIN_ACCOUNT, body.username)
    return _tokens(ctx.tokens.login(ctx.db, body.username, body.password))


@router.post("/refresh")
def refresh(body: RefreshBody, ctx: Ctx) -> Tokens:
    return _tokens(ctx.tokens.refresh(ctx.db, body.refresh_token))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(
    ctx: Ctx,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
    body: LogoutBody | None = None,
) -> Response:
    """Revoke the login session named by the refresh token or by the access token (or both)."""
    revoked = False
    with ctx.db.transaction() as session:
        if body is not None and body.refresh_token:
            ctx.tokens.logout(session, body.refresh_token)
            revoked = True
        if credentials is not None:
            claims = ctx.tokens.decode_access(credentials.credentials)
            ctx.tokens.revoke_family(session, claims.family)
            revoked = True
    if not revoked:
        raise Unauthorized("Send the refresh token or an access token to log out.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
