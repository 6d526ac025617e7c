"""Request dependencies: the service context and the authenticated user.

Both are coroutines: a plain function dependency costs a hop through the thread pool on every
request, which under many concurrent polls was most of a request's price. The user look-up still
runs in the pool (it touches the database) but as one hop, with the token checked in between.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from animatica.db.models import RefreshToken, User
from animatica.service.auth import AccessClaims
from animatica.service.context import ServiceContext
from animatica.service.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v0/auth/login.")


async def get_context(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ServiceContext, Depends(get_context)]


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    plan_id: str
    family: str


async def access_claims(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> AccessClaims:
    """The verified claims of the Bearer token; missing, forged, expired or refresh-typed → 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Not authenticated: send 'Authorization: Bearer <access token>'.")
    return ctx.tokens.decode_access(credentials.credentials)


Claims = Annotated[AccessClaims, Depends(access_claims)]


async def current_user(ctx: Ctx, claims: Claims) -> CurrentUser:
    """The caller, still enabled and not signed out; 401 otherwise."""
    return await run_in_threadpool(active_user, ctx, claims)


def active_user(ctx: ServiceContext, claims: AccessClaims) -> CurrentUser:
    """The token's user, if the account is still enabled and the login was not signed out."""
    revoked = (
        select(RefreshToken.id)
        .where(RefreshToken.family == claims.family, RefreshToken.revoked_at.is_not(None))
        .exists()
        .label("revoked")
    )
    with ctx.db.read() as session:  # one query: this runs on every API request
        row = session.execute(
            select(User.username, User.plan_id, User.disabled, revoked).where(User.id == claims.user_id)
        ).one_or_none()
    if row is None or row.disabled:
        raise Unauthorized("This account is no longer active.")
    if row.revoked:
        raise Unauthorized("This session was signed out; log in again.")
    return CurrentUser(claims.user_id, row.username, row.plan_id, claims.family)


Me = Annotated[CurrentUser, Depends(current_user)]
