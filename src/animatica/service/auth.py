"""Passwords, access tokens and rotating refresh tokens.

Access tokens are short-lived HS256 JWTs whose subject is the immutable user id and whose
``type`` and ``iss`` are checked, so a refresh token can never pass as one. Each login starts a
session ("family") of opaque refresh tokens, stored only as SHA-256 hashes. A refresh token is
good once: using it returns a new one. Presenting an already used token means it was copied, so
the whole family is revoked; logout revokes it too, and an access token dies with its family.

Every argon2 hash or verification holds 64 MiB for its duration, so a burst of logins could take
gigabytes: at most ``password_hash_concurrency`` run at once in a process, a few more callers
wait for a slot, and past that a login or sign-up is answered 503 with Retry-After at once.
"""

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from animatica.db.models import RefreshToken, User
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.service.errors import Forbidden, Unauthorized
from animatica.service.ratelimit import Busy
from animatica.settings import Settings

_hasher = PasswordHasher()
# Verifying against this keeps unknown usernames as slow as wrong passwords.
_DUMMY_HASH = _hasher.hash("animatica-dummy-password")
ALGORITHM = "HS256"
TOKEN_NAME = "Bearer"
VERIFIED_TOKENS = 4096  # access tokens remembered as verified (a few hundred bytes each)
HASH_RETRY_SECONDS = 2


class HashSlots:
    """Admission to argon2: `limit` computations at once, `queue` callers waiting, the rest refused.

    The bound is per process because the memory it protects is; it is kept in a condition
    rather than a semaphore so that waiting callers can be counted (and refused past `queue`)
    and the bound set at start-up from the settings.
    """

    def __init__(self, limit: int = 4, queue: int = 8) -> None:
        self._changed = threading.Condition()
        self.limit = limit
        self.queue = queue
        self.active = 0
        self.waiting = 0

    def configure(self, limit: int, queue: int) -> None:
        with self._changed:
            self.limit, self.queue = max(1, limit), max(0, queue)
            self._changed.notify_all()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._changed:
            if self.active >= self.limit:
                if self.waiting >= self.queue:
                    raise Busy(
                        "The server is busy checking other passwords; try again in a moment.",
                        HASH_RETRY_SECONDS,
                    )
                self.waiting += 1
                try:
                    self._changed.wait_for(lambda: self.active < self.limit)
                finally:
                    self.waiting -= 1
            self.active += 1
        try:
            yield
        finally:
            with self._changed:
                self.active -= 1
                self._changed.notify()


HASH_SLOTS = HashSlots()


def bound_password_hashing(limit: int, queue: int) -> None:
    """Set this process's bound on password hashes at once and on callers waiting for one."""
    HASH_SLOTS.configure(limit, queue)


def hash_password(password: str) -> str:
    with HASH_SLOTS.hold():
        return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    with HASH_SLOTS.hold():
        try:
            return _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_in: int
    refresh_expires_in: int


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    family: str


class TokenService:
    def __init__(self, settings: Settings) -> None:
        self._key = settings.resolved_secret_key()
        self._issuer = settings.token_issuer
        self._access_seconds = settings.access_token_seconds
        self._refresh_seconds = settings.refresh_token_seconds
        # Verified access tokens, so a client polling every second is not re-verified each time.
        # Keyed by the whole token (signature included); expiry is still checked on every use.
        self._verified: OrderedDict[str, tuple[AccessClaims, float]] = OrderedDict()
        self._verified_lock = threading.Lock()

    def login(self, db: Database, username: str, password: str) -> TokenPair:
        """Check the password, then start a session.

        The check runs between two transactions: it takes a large fraction of a second (and may
        wait for a hashing slot), during which it must hold neither a pooled connection nor, on
        SQLite, the write lock that every other writer would queue behind.
        """
        with db.read() as session:
            user = session.scalar(select(User).where(User.username == username))
        if user is None:
            verify_password(_DUMMY_HASH, password)
            raise Unauthorized("Invalid credentials")
        if not verify_password(user.password_hash, password):
            raise Unauthorized("Invalid credentials")
        disabled = Forbidden("This account is disabled; contact the administrator.")
        if user.disabled:
            raise disabled
        rehashed = hash_password(password) if _hasher.check_needs_rehash(user.password_hash) else None
        with db.transaction() as session:
            # Disabling revokes existing sessions; one being started at that moment must not slip by.
            if session.scalar(select(User.disabled).where(User.id == user.id)):
                raise disabled
            if rehashed is not None:
                session.execute(
                    update(User)
                    .where(User.id == user.id, User.password_hash == user.password_hash)
                    .values(password_hash=rehashed)
                )
            return self._issue(session, user.id, secrets.token_hex(16))

    def refresh(self, db: Database, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; on reuse the family's revocation is committed before the 401."""
        with db.transaction() as session:
            outcome = self._rotate(session, refresh_token)
        if isinstance(outcome, Unauthorized):
            raise outcome
        return outcome

    def _rotate(self, session: Session, refresh_token: str) -> TokenPair | Unauthorized:
        row = self._find(session, refresh_token)
        now = utcnow()
        if row.revoked_at is not None:
            return Unauthorized("This session was signed out; log in again.")
        if row.used_at is not None:
            self._revoke_family(session, row.family)
            return Unauthorized("This refresh token was already used; log in again.")
        if row.expires_at <= now:
            return Unauthorized("The refresh token has expired; log in again.")
        claimed = session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if claimed != 1:
            # Another request used the same token at the same moment: treat it as reuse.
            self._revoke_family(session, row.family)
            return Unauthorized("This refresh token was already used; log in again.")
        user = session.get(User, row.user_id)
        if user is None or user.disabled:
            return Unauthorized("This account is no longer active.")
        return self._issue(session, row.user_id, row.family)

    def logout(self, session: Session, refresh_token: str) -> None:
        row = self._find(session, refresh_token)
        self._revoke_family(session, row.family)

    def revoke_family(self, session: Session, family: str) -> None:
        self._revoke_family(session, family)

    def decode_access(self, token: str) -> AccessClaims:
        """Check signature, expiry, issuer and type; raises Unauthorized otherwise."""
        with self._verified_lock:
            known = self._verified.get(token)
        if known is not None:
            claims, expires = known
            if time.time() < expires:
                return claims
            raise Unauthorized("The access token has expired; refresh it or log in again.")
        verified = self._verify_access(token)
        with self._verified_lock:
            self._verified[token] = verified
            while len(self._verified) > VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return verified[0]

    def _verify_access(self, token: str) -> tuple[AccessClaims, float]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "iss", "type", "sid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The access token has expired; refresh it or log in again.") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("Invalid or expired token") from exc
        if claims.get("type") != "access":
            raise Unauthorized("Invalid or expired token")
        try:
            return AccessClaims(user_id=int(claims["sub"]), family=str(claims["sid"])), float(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise Unauthorized("Invalid or expired token") from exc

    def _issue(self, session: Session, user_id: int, family: str) -> TokenPair:
        now = utcnow()
        access = jwt.encode(
            {
                "sub": str(user_id),
                "type": "access",
                "iss": self._issuer,
                "iat": now,
                "exp": now + timedelta(seconds=self._access_seconds),
                "sid": family,
                "jti": secrets.token_hex(8),
            },
            self._key,
            algorithm=ALGORITHM,
        )
        refresh = secrets.token_urlsafe(32)
        session.add(
            RefreshToken(
                user_id=user_id,
                family=family,
                token_hash=_digest(refresh),
                created_at=now,
                expires_at=now + timedelta(seconds=self._refresh_seconds),
            )
        )
        session.flush()
        return TokenPair(access, refresh, self._access_seconds, self._refresh_seconds)

    @staticmethod
    def _find(session: Session, refresh_token: str) -> RefreshToken:
        row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == _digest(refresh_token)))
        if row is None:
            raise Unauthorized("Invalid refresh token; log in again.")
        return row

    @staticmethod
    def _revoke_family(session: Session, family: str) -> None:
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
