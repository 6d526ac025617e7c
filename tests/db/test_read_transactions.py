"""Reads never queue behind writers: ``Database.read`` on SQLite takes no write lock."""

import threading
from typing import Any

from sqlalchemy import select, update

from animatica.db.models import User
from animatica.db.session import Database
from animatica.service import accounts


def test_reads_proceed_while_a_writer_holds_the_lock(db: Database) -> None:
    user_id = accounts.signup(db, "alice", "correct horse", free_credits=3)
    writing, release = threading.Event(), threading.Event()

    def writer() -> None:
        with db.transaction() as session:
            session.execute(update(User).where(User.id == user_id).values(plan_id="pro"))
            session.flush()
            writing.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert writing.wait(10)
    seen: dict[str, Any] = {}

    def reader() -> None:
        with db.read() as session:
            seen["plan"] = session.scalar(select(User.plan_id).where(User.id == user_id))

    reading = threading.Thread(target=reader)
    reading.start()
    reading.join(5)  # a read that waited for the write lock would still be blocked here
    finished_while_locked = not reading.is_alive()
    release.set()
    thread.join(10)
    reading.join(10)
    assert finished_while_locked
    assert seen["plan"] == "free"  # the snapshot before the writer's commit


def test_objects_stay_usable_and_writes_are_discarded(db: Database) -> None:
    user_id = accounts.signup(db, "bob", "correct horse", free_credits=3)
    with db.read() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.plan_id = "studio"
    assert user.username == "bob"  # loaded values survive the end of the read
    with db.read() as session:
        assert session.scalar(select(User.plan_id).where(User.id == user_id)) == "free"
