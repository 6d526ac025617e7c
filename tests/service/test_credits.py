"""Credits through the HTTP API: concurrent submissions for the last credit, and admin grants.

The ledger's own concurrency guarantees are tested in ``tests/db/test_ledger.py``.
"""

import threading
from pathlib import Path
from typing import Any


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
