"""Bring a database to the newest schema with Alembic, without an alembic.ini on disk.

The migration scripts ship inside the package, so an installed Animatica can upgrade the
database it finds at start-up.
"""

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x414E494D  # "ANIM": the advisory lock id that serialises schema upgrades


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@contextlib.contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    """Hold an exclusive lock on a file beside an SQLite database while its schema is upgraded.

    Each write transaction there begins IMMEDIATE already, but a process that waits for another's
    upgrade does so under SQLite's busy timeout, which a loaded machine can outlast; a lock file
    makes the others wait as long as the upgrade takes, then find nothing left to do.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade_to_head(engine: Engine) -> None:
    """Migrate under a lock held by one process at a time, since the app and workers may start
    together: PostgreSQL's advisory lock, or a lock file beside an SQLite database."""
    if engine.dialect.name != "postgresql":
        with _file_lock(engine.url.database if engine.dialect.name == "sqlite" else None):
            command.upgrade(alembic_config(engine), "head")
        return
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine), "head")
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            holder.commit()
