"""Engines and transactions.

SQLite runs in WAL mode and every write transaction starts with ``BEGIN IMMEDIATE``: writers
queue on the database lock up front instead of failing half-way with "database is locked" when
two transactions that both read first try to write. Reads (``Database.read``) start a deferred
transaction instead: in WAL mode they see a snapshot and never wait for the write lock, so
status polls stay fast while jobs write progress. On PostgreSQL, code that must serialise per
user takes a row lock (``SELECT ... FOR UPDATE``), which SQLite simply ignores.
"""

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from animatica.errors import ConfigError

_READ_ONLY = "animatica_read_only"  # execution option marking a read transaction


def create_db_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"ANIMATICA_DATABASE_URL is not a database URL ({url!r}); fix it.") from exc
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # As many kept connections as the server has request threads (40): a connection
            # opened past the pool is closed again after one use, and opening one costs more
            # than the query (WAL and pragmas are set up each time).
            pool = {"pool_size": 40, "max_overflow": 20}
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30}, **pool)
        _configure_sqlite(engine)
        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=_default_postgres_driver())
    return create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _default_postgres_driver() -> str:
    """A plain ``postgresql://`` URL should work with whichever driver is installed."""
    if importlib.util.find_spec("psycopg") is not None:
        return "postgresql+psycopg"
    return "postgresql+psycopg2"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Database:
    """One engine and its session factory; `transaction()` commits or rolls back as a unit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for reads: takes no write lock on SQLite and is never committed.

        Closing the session ends the transaction (the pool rolls the connection back) while the
        loaded objects keep their values, so callers may use them afterwards. Anything written
        inside is discarded; use ``transaction()`` to change data.
        """
        with self._sessions() as session:
            session.connection(execution_options={_READ_ONLY: True})
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
