"""The credit ledger: every change of a balance is a row, and the balance is their sum.

Reservation is the one operation that must never race: it locks the user's row first
(``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite transactions already hold the database write
lock from their first statement), then reads the sum and inserts the debit in the same
transaction, so two submissions for the last credit cannot both see it.

A row's (kind, ref) pair is unique, so a job is debited, consumed and refunded at most once and
a checkout is credited at most once, whatever retries or replays happen.

Money given back to a buyer (a refund, a dispute) is taken back as ``chargeback`` rows. Those
can leave a balance below zero when the credits were already spent; such a balance blocks new
jobs, with its own message, until credits are bought again.
"""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from animatica.db.models import LedgerEntry, User
from animatica.errors import AnimaticaError


class InsufficientCredits(AnimaticaError):
    """The user has no credit left for another animation."""


NO_CREDITS = "You have no credits left; buy more on the pricing page to animate again."
CHARGEBACK = "chargeback"


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


def require_credit(session: Session, user_id: int, cost: int = 1) -> None:
    """Raise InsufficientCredits unless `cost` credits can be spent, saying why not.

    A negative balance gets its own message: "no credits left" would not explain why buying
    one pack may still not be enough.
    """
    have = balance(session, user_id)
    if have < 0:
        raise InsufficientCredits(
            f"Your balance is negative ({have} credits) after a refund or dispute; buy credits to continue."
        )
    if have < cost:
        raise InsufficientCredits(NO_CREDITS)


def reserve(session: Session, user_id: int, ref: str, cost: int = 1) -> None:
    """Debit `cost` credits for `ref` or raise InsufficientCredits; never goes below zero."""
    lock_user(session, user_id)
    require_credit(session, user_id, cost)
    if not record(session, user_id, -cost, "reserve", ref):
        raise RuntimeError(f"credit for {ref} was already reserved")


def consume(session: Session, user_id: int, ref: str) -> bool:
    """Mark a reserved credit as spent; a zero-amount row keeps the history explicit.

    Like `refund`, only where a credit was reserved: free work leaves no row."""
    if not reserved(session, ref):
        return False
    return record(session, user_id, 0, "consume", ref)


def refund(session: Session, user_id: int, ref: str) -> bool:
    """Return the credit reserved for `ref`, once, and only if one was reserved."""
    amount = reserved(session, ref)
    if not amount:
        return False
    return record(session, user_id, amount, "refund", ref)


def reserved(session: Session, ref: str) -> int:
    """The credits reserved for `ref` (0 when none were: work of cost 0 reserves nothing)."""
    amount = session.scalar(
        select(LedgerEntry.amount).where(LedgerEntry.kind == "reserve", LedgerEntry.ref == ref)
    )
    return -int(amount) if amount is not None else 0


def grant(
    session: Session, user_id: int, amount: int, kind: str, ref: str | None, note: str | None = None
) -> bool:
    """Credit (or, with a negative amount, debit) outside the job cycle: signup, purchase, admin."""
    return record(session, user_id, amount, kind, ref, note)


def take_back(session: Session, user_id: int, total: int, ref: str) -> int:
    """Debit credits for `ref` until `total` have been taken back in all; returns those debited now.

    Each debit's ref carries the running total it brings `ref` to, so two takers that saw the
    same earlier debits write the same (kind, ref) pair and only one of them lands. The caller
    holds a lock on what `ref` names, so takers never interleave otherwise.
    """
    prefix = f"{ref}#"
    taken = -int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.kind == CHARGEBACK, LedgerEntry.ref.startswith(prefix, autoescape=True)
            )
        )
        or 0
    )
    due = total - taken
    if due <= 0:
        return 0
    if not record(session, user_id, -due, CHARGEBACK, f"{prefix}{total}"):
        return 0
    return due
