"""The credit ledger: every change of a balance is a row, and the balance is their sum.

Reservation is the one operation that must never race: it locks the user's row first
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions already hold the database write
lock from their first statement), then reads the sum and inserts the debit in the same
transaction, so two submissions for the last credit cannot both see it.

A row's (kind, ref) pair is unique, so a job is debited, consumed and refunded at most once and
a checkout is credited at most once, whatever retries or replays happen.
"""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from animatica.db.models import LedgerEntry, User
from animatica.errors import AnimaticaError


class InsufficientCredits(AnimaticaError):
    """The user has no credit left for another animation."""


def balance(session: Session, user_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.user_id == user_id)
    )
    return int(total or 0)


def lock_user(session: Session, user_id: int) -> None:
    session.execute(select(User.id).where(User.id == user_id).with_for_update())


def record(
    session: Session, user_id: int, amount: int, kind: str, ref: str | None = None, note: str | None = None
) -> bool:
    """Add a ledger row; returns False (and changes nothing) when (kind, ref) already exists."""
    if ref is not None:
        exists = session.scalar(
            select(LedgerEntry.id).where(LedgerEntry.kind == kind, LedgerEntry.ref == ref)
        )
        if exists is not None:
            return False
    try:
        with session.begin_nested():
            session.add(LedgerEntry(user_id=user_id, amount=amount, kind=kind, ref=ref, note=note))
    except IntegrityError:
        # A concurrent transaction recorded the same (kind, ref) first.
        return False
    return True


def reserve(session: Session, user_id: int, ref: str, cost: int = 1) -> None:
    """Debit `cost` credits for `ref` or raise InsufficientCredits; never goes below zero."""
    lock_user(session, user_id)
    if balance(session, user_id) < cost:
        raise InsufficientCredits("You have no credits left; buy more on the pricing page to animate again.")
    if not record(session, user_id, -cost, "reserve", ref):
        raise RuntimeError(f"credit for {ref} was already reserved")


def consume(session: Session, user_id: int, ref: str) -> bool:
    """Mark a reserved credit as spent; a zero-amount row keeps the history explicit."""
    return record(session, user_id, 0, "consume", ref)


def refund(session: Session, user_id: int, ref: str) -> bool:
    """Return the credit reserved for `ref`, once, and only if one was reserved."""
    reserved = session.scalar(
        select(LedgerEntry.amount).where(LedgerEntry.kind == "reserve", LedgerEntry.ref == ref)
    )
    if reserved is None:
        return False
    return record(session, user_id, -reserved, "refund", ref)


def grant(
    session: Session, user_id: int, amount: int, kind: str, ref: str | None, note: str | None = None
) -> bool:
    """Credit (or, with a negative amount, debit) outside the job cycle: signup, purchase, admin."""
    return record(session, user_id, amount, kind, ref, note)
