"""Persistence: SQLAlchemy models, engines and sessions, Alembic migrations."""

from animatica.db.migrate import upgrade_to_head
from animatica.db.session import Database

__all__ = ["Database", "upgrade_to_head"]
