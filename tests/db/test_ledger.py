"""The credit ledger under concurrency, on a real database: racing for the last credit never goes
negative, and refunds happen once per job."""

import threading
from typing import Any

from sqlalchemy import select

from animatica.db import ledger
from animatica.db.models import LedgerEntry


def test_threads_racing_for_the_last_credit(db: Any) -> None:
    from animatica.service import accounts

    user_id = accounts.signup(db, "alice", "correct horse", free_credits=2)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt(index: int) -> None:
        barrier.wait()
        try:
            with db.transaction() as session:
                ledger.reserve(session, user_id, f"job:race-{index}")
            result = f"ok:{index}"
        except ledger.InsufficientCredits:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o.split(":")[1] for o in outcomes if o.startswith("ok")]
    assert len(winners) == 2 and outcomes.count("refused") == 6
    with db.transaction() as session:
        assert ledger.balance(session, user_id) == 0
        # Refunds and consumption are once per job, whatever the retries.
        assert ledger.refund(session, user_id, f"job:race-{winners[0]}")
        assert not ledger.refund(session, user_id, f"job:race-{winners[0]}")
        assert not ledger.refund(session, user_id, "job:never-reserved")
        assert ledger.balance(session, user_id) == 1
        kinds = session.scalars(select(LedgerEntry.kind).where(LedgerEntry.user_id == user_id)).all()
        assert sorted(kinds) == ["refund", "reserve", "reserve", "signup"]
