"""Credits under concurrency, on a real database: racing for the last credit never goes negative."""

import threading
from pathlib import Path
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


def test_concurrent_http_submissions_for_the_last_credit(
    make_client: Any, api: Any, media: dict[str, Path]
) -> None:
    client = make_client(worker=False, free_credits=1)
    tokens = api.signup_login(client, "alice")
    codes: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        code = api.submit(client, tokens, media["image"], media["video"]).status_code
        with lock:
            codes.append(code)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == [202, 402, 402, 402]
    assert api.credits(client, tokens) == 0
    assert client.get("/api/v1/animations", headers=api.bearer(tokens)).json()["total"] == 1


def test_admin_grant(make_client: Any, api: Any, settings: Any) -> None:
    from animatica.service.admin import grant_credits
    from animatica.service.errors import Conflict, NotFound

    client = make_client(worker=False)
    tokens = api.signup_login(client, "alice")
    assert grant_credits("alice", 5, settings) == 8
    assert api.credits(client, tokens) == 8
    assert grant_credits("alice", -8, settings) == 0
    for call in (lambda: grant_credits("alice", -1, settings), lambda: grant_credits("nobody", 1, settings)):
        try:
            call()
        except (Conflict, NotFound):
            continue
        raise AssertionError("expected a refusal")
