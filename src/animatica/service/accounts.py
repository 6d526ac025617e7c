"""Accounts: sign-up with free credits, look-ups, and the admin operations the CLI wires."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from animatica.db import ledger
from animatica.db.models import User
from animatica.db.session import Database
from animatica.db.types import utcnow
from animatica.service.auth import hash_password
from animatica.service.errors import Conflict, NotFound


@dataclass(frozen=True)
class UserSummary:
    id: int
    username: str
    plan_id: str
    credits: int
    disabled: bool


def signup(db: Database, username: str, password: str, free_credits: int) -> int:
    """Create an account and grant its free credits in one transaction; returns the user id."""
    password_hash = hash_password(password)
    try:
        with db.transaction() as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                raise Conflict(f"User already exists: Username '{username}' already exists")
            user = User(username=username, password_hash=password_hash, plan_id="free", created_at=utcnow())
            session.add(user)
            session.flush()
            if free_credits:
                ledger.grant(session, user.id, free_credits, "signup", f"signup:{user.id}", "free credits")
            return user.id
    except IntegrityError as exc:
        # Two sign-ups for one name at once: the unique index decides, the loser gets 409.
        raise Conflict(f"User already exists: Username '{username}' already exists") from exc


def summary(db: Database, user_id: int) -> UserSummary:
    with db.read() as session:
        user = session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        return UserSummary(
            user.id, user.username, user.plan_id, ledger.balance(session, user.id), user.disabled
        )


def balance(db: Database, user_id: int) -> int:
    """The credits the user can spend now."""
    with db.read() as session:
        return ledger.balance(session, user_id)


def _by_name(db: Database, username: str) -> int:
    with db.read() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
    if user_id is None:
        raise NotFound(f"There is no user named {username!r}; check the name with 'animatica users list'.")
    return int(user_id)


def grant(db: Database, username: str, amount: int, note: str = "granted by an administrator") -> int:
    """Add (or with a negative amount, take back) credits; returns the new balance."""
    user_id = _by_name(db, username)
    with db.transaction() as session:
        ledger.lock_user(session, user_id)
        if amount < 0 and ledger.balance(session, user_id) + amount < 0:
            raise Conflict(f"{username} has fewer than {-amount} credits; nothing was taken.")
        ledger.grant(session, user_id, amount, "admin", None, note)
        return ledger.balance(session, user_id)


def all_users(db: Database) -> list[UserSummary]:
    with db.read() as session:
        users = session.scalars(select(User).order_by(User.id)).all()
        return [
            UserSummary(u.id, u.username, u.plan_id, ledger.balance(session, u.id), u.disabled) for u in users
        ]


def set_disabled(db: Database, username: str, disabled: bool = True) -> None:
    """Disabling also signs the user out everywhere; their access tokens stop working at once."""
    from sqlalchemy import update

    from animatica.db.models import RefreshToken

    user_id = _by_name(db, username)
    with db.transaction() as session:
        session.execute(update(User).where(User.id == user_id).values(disabled=disabled))
        if disabled:
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
