"""Bring a database to the newest schema with Alembic, without an alembic.ini on disk.

The migration scripts ship inside the package, so an installed Animatica can upgrade the
database it finds at start-up.
"""

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


def upgrade_to_head(engine: Engine) -> None:
    """Migrate; on PostgreSQL under an advisory lock, since the app and workers may start together.

    (SQLite needs no lock: every transaction there begins IMMEDIATE, so one upgrade waits for
    the other and then finds nothing left to do.)
    """
    if engine.dialect.name != "postgresql":
        command.upgrade(alembic_config(engine), "head")
        return
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            command.upgrade(alembic_config(engine), "head")
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            holder.commit()
