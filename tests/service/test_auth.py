"""Tokens: expired, forged, wrong-type and revoked tokens are all refused with 401."""

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

SECRET = "test-secret-key-that-is-long-enough-for-hs256"
PROTECTED = ("/api/v1/me", "/api/v0/subscriptions/current", "/api/v1/animations")


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "sub": "1",
        "type": "access",
        "iss": "Animatica",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "sid": "x",
    }
    claims.update(overrides)
    return claims


def test_missing_forged_expired_and_refresh_tokens_are_refused(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    me = client.get("/api/v1/me", headers=api.bearer(tokens))
    assert me.status_code == 200
    good = jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"], issuer="Animatica")
    assert good["sub"] == str(me.json()["id"])  # the immutable id, not the username

    forged = jwt.encode(
        _claims(sub=good["sub"], sid=good["sid"]), "another-key-another-key-another-key!", "HS256"
    )
    expired = jwt.encode(
        _claims(sub=good["sub"], sid=good["sid"], exp=datetime.now(UTC) - timedelta(seconds=5)),
        SECRET,
        "HS256",
    )
    refresh_typed = jwt.encode(_claims(sub=good["sub"], sid=good["sid"], type="refresh"), SECRET, "HS256")
    foreign_issuer = jwt.encode(_claims(sub=good["sub"], sid=good["sid"], iss="someone"), SECRET, "HS256")
    unsigned = jwt.encode(_claims(sub=good["sub"], sid=good["sid"]), None, "none")
    for path in PROTECTED:
        assert client.get(path).status_code == 401
        for token in (
            forged,
            expired,
            refresh_typed,
            foreign_issuer,
            unsigned,
            tokens["refresh_token"],
            "garbage",
        ):
            response = client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, (path, token)
            assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_rotates_and_reuse_revokes_the_family(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    first = api.signup_login(client, "alice")
    second = client.post("/api/v0/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second_tokens = second.json()
    assert second_tokens["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=api.bearer(second_tokens)).status_code == 200

    # The old refresh token shows up again: it was stolen. Everything of this login dies.
    replay = client.post("/api/v0/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert (
        client.post(
            "/api/v0/auth/refresh", json={"refresh_token": second_tokens["refresh_token"]}
        ).status_code
        == 401
    )
    assert client.get("/api/v1/me", headers=api.bearer(second_tokens)).status_code == 401
    assert client.get("/api/v1/me", headers=api.bearer(first)).status_code == 401

    # Another login of the same user is a separate family and unaffected.
    other = client.post("/api/v0/auth/login", json={"username": "alice", "password": "correct horse"}).json()
    assert client.get("/api/v1/me", headers=api.bearer(other)).status_code == 200


def test_logout_revokes_access_and_refresh_tokens(make_client: Any, api: Any) -> None:
    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    assert client.post("/api/v0/auth/logout").status_code == 401
    response = client.post("/api/v0/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert client.get("/api/v1/me", headers=api.bearer(tokens)).status_code == 401
    assert (
        client.post("/api/v0/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )

    again = client.post("/api/v0/auth/login", json={"username": "alice", "password": "correct horse"}).json()
    assert client.post("/api/v0/auth/logout", headers=api.bearer(again)).status_code == 204
    assert client.get("/api/v1/me", headers=api.bearer(again)).status_code == 401


def test_expired_refresh_token_is_refused(make_client: Any, api: Any, db: Any) -> None:
    from sqlalchemy import update

    from animatica.db.models import RefreshToken

    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    with db.transaction() as session:
        session.execute(update(RefreshToken).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    response = client.post("/api/v0/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_disabled_user_is_signed_out_and_cannot_log_in(make_client: Any, api: Any, settings: Any) -> None:
    from animatica.service.admin import disable_user, list_users

    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    api.signup_login(client, "bob")
    disable_user("alice", settings)
    assert client.get("/api/v1/me", headers=api.bearer(tokens)).status_code == 401
    login = client.post("/api/v0/auth/login", json={"username": "alice", "password": "correct horse"})
    assert login.status_code == 403
    users = {u.username: u for u in list_users(settings)}
    assert users["alice"].disabled and not users["bob"].disabled and users["bob"].credits == 3


def test_a_token_remembered_as_verified_still_expires(
    make_client: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    tokens = api.signup_login(client, "alice")
    assert client.get("/api/v1/me", headers=api.bearer(tokens)).status_code == 200  # now remembered
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    later = float(claims["exp"]) + 1
    monkeypatch.setattr("animatica.service.auth.time.time", lambda: later)
    response = client.get("/api/v1/me", headers=api.bearer(tokens))
    assert response.status_code == 401 and "expired" in response.json()["detail"]
