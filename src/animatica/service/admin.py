"""Admin operations for the CLI (``animatica users grant|list|disable``).

Each call opens the database named by the settings (migrating it if needed), so the CLI works
whether or not the server is running.
"""

from animatica.db.migrate import upgrade_to_head
from animatica.db.session import Database
from animatica.service import accounts
from animatica.service.accounts import UserSummary
from animatica.settings import Settings, get_settings


def _open(settings: Settings | None) -> Database:
    db = Database((settings or get_settings()).database_url)
    upgrade_to_head(db.engine)
    return db


def grant_credits(username: str, n: int, settings: Settings | None = None) -> int:
    """Give `n` credits (negative takes them back); returns the new balance."""
    db = _open(settings)
    try:
        return accounts.grant(db, username, n)
    finally:
        db.dispose()


def list_users(settings: Settings | None = None) -> list[UserSummary]:
    db = _open(settings)
    try:
        return accounts.all_users(db)
    finally:
        db.dispose()


def disable_user(username: str, settings: Settings | None = None, disabled: bool = True) -> None:
    """Disable (or re-enable) an account; disabling signs it out everywhere at once."""
    db = _open(settings)
    try:
        accounts.set_disabled(db, username, disabled)
    finally:
        db.dispose()
