"""Request dependencies: the service context and the authenticated user."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from animatica.db.models import User
from animatica.service.context import ServiceContext
from animatica.service.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="Access token from /api/v0/auth/login.")


def get_context(request: Request) -> ServiceContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ServiceContext, Depends(get_context)]


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    plan_id: str
    family: str


def current_user(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> CurrentUser:
    """Missing, forged, expired, refresh-typed or revoked tokens all end in 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Not authenticated: send 'Authorization: Bearer <access token>'.")
    claims = ctx.tokens.decode_access(credentials.credentials)
    with ctx.db.read() as session:
        user = session.get(User, claims.user_id)
        if user is None or user.disabled:
            raise Unauthorized("This account is no longer active.")
        if ctx.tokens.family_revoked(session, claims.family):
            raise Unauthorized("This session was signed out; log in again.")
        return CurrentUser(user.id, user.username, user.plan_id, claims.family)


Me = Annotated[CurrentUser, Depends(current_user)]
