"""The distributed plan tables live in the migrations: a database that had them made on first use
is upgraded keeping its work, plans go with their job, and concurrent upgrades are safe."""

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
    text,
)
from tests.conftest import add_job, postgres_problem, scratch_postgres

from animatica.db import Database, upgrade_to_head
from animatica.db.migrate import alembic_config
from animatica.db.models import Base, DistPlan, DistSegment, Job
from animatica.db.types import UTCDateTime
from animatica.jobs.distributed import plans
from animatica.jobs.segments import plan_segments
from animatica.service.accounts import signup


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, not yet migrated."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    reason = postgres_problem()
    if reason:
        pytest.skip(reason)
    with scratch_postgres("animatica_schema") as url:
        yield url


def _legacy_tables(db: Database) -> None:
    """The two tables as made on first use, outside the migrations: no foreign keys."""
    legacy = MetaData()
    Table(
        "dist_plans",
        legacy,
        Column("job_id", String(32), primary_key=True),
        Column("user_id", Integer, nullable=False),
        Column("urgency", Integer, nullable=False),
        Column("rate_num", Integer, nullable=False),
        Column("rate_den", Integer, nullable=False),
        Column("has_audio", Boolean, nullable=False),
        Column("total_frames", Integer, nullable=True),
        Column("segment_count", Integer, nullable=False),
        Column("best_frame", Integer, nullable=True),
        Column("join_state", String(8), nullable=False),
        Column("join_at", UTCDateTime(), nullable=True),
        Column("created_at", UTCDateTime(), nullable=False),
    )
    Table(
        "dist_segments",
        legacy,
        Column("job_id", String(32), primary_key=True),
        Column("idx", Integer, primary_key=True),
        Column("user_id", Integer, nullable=False),
        Column("urgency", Integer, nullable=False),
        Column("start", Integer, nullable=False),
        Column("stop", Integer, nullable=True),
        Column("status", String(8), nullable=False),
        Column("sent", Boolean, nullable=False),
        Column("queued_at", UTCDateTime(), nullable=True),
        Column("attempts", Integer, nullable=False),
        Column("frames", Integer, nullable=True),
        Column("worker", String(96), nullable=True),
        Column("done_at", UTCDateTime(), nullable=True),
        Index("ix_dist_segments_user_status", "user_id", "status"),
    )
    legacy.create_all(db.engine)


def _plan(db: Database, job_id: str, user_id: int, frames: int = 20) -> None:
    from fractions import Fraction

    with db.transaction() as session:
        assert plans.create_plan(
            session,
            job_id=job_id,
            user_id=user_id,
            urgency=0,
            frame_rate=Fraction(8),
            has_audio=False,
            total_frames=frames,
            best_frame=None,
            parts=plan_segments(frames, Fraction(8), 1.0),
            now=datetime.now(UTC),
        )


def _schema_matches_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_tables_made_on_first_use_are_rebuilt_keeping_live_plans(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        command.upgrade(alembic_config(db.engine), "0001")
        _legacy_tables(db)
        user = signup(db, "alice", "password-long-enough", 3)
        live = add_job(db, user)
        _plan(db, live, user)  # the old plan_store wrote these rows the same way
        _plan(db, "0" * 32, user)  # a plan whose job was deleted meanwhile: nothing to keep
        upgrade_to_head(db.engine)
        _schema_matches_models(db)
        with db.transaction() as session:
            assert [row.index for row in plans.job_segments(session, live)] == [0, 1, 2]
            assert plans.get_plan(session, live) is not None
            assert plans.get_plan(session, "0" * 32) is None
            assert plans.job_segments(session, "0" * 32) == []
        assert [name for name in inspect(db.engine).get_table_names() if name.endswith("_pre0002")] == []
        command.downgrade(alembic_config(db.engine), "0001")
        upgrade_to_head(db.engine)  # and back up on a database that never had them
        _schema_matches_models(db)
    finally:
        db.dispose()


def test_a_plan_and_its_segments_go_with_their_job(fresh_url: str) -> None:
    db = Database(fresh_url)
    try:
        upgrade_to_head(db.engine)
        user = signup(db, "alice", "password-long-enough", 3)
        gone, kept = add_job(db, user), add_job(db, user)
        _plan(db, gone, user)
        _plan(db, kept, user)
        with db.transaction() as session:
            session.execute(Job.__table__.delete().where(Job.id == gone))
        with db.transaction() as session:
            left = session.execute(select(DistSegment.job_id).distinct()).scalars().all()
            assert left == [kept]
            assert session.execute(select(DistPlan.job_id)).scalars().all() == [kept]
    finally:
        db.dispose()


def test_app_and_workers_starting_together_migrate_once(fresh_url: str) -> None:
    """Separate processes, as on a real start: Alembic keeps per-process state, so not threads."""
    code = (
        "import sys; from animatica.db import Database, upgrade_to_head; "
        "upgrade_to_head(Database(sys.argv[1]).engine)"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", code, fresh_url], stderr=subprocess.PIPE) for _ in range(3)
    ]
    failures = [p.stderr.read().decode() for p in processes if p.wait(120) != 0 and p.stderr]
    assert not failures, "\n".join(failure[-1500:] for failure in failures)
    db = Database(fresh_url)
    try:
        _schema_matches_models(db)
        with db.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == ["0006"]
    finally:
        db.dispose()
