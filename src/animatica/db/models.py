"""Tables of the service.

Balances are never stored: they are the sum of `ledger` rows, so every change of credit is
auditable. The pair (kind, ref) is unique in the ledger, which makes crediting a payment or
returning a job's credit idempotent at the database level rather than by careful code alone.
"""

from datetime import date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from animatica.db.types import UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    plan_id: Mapped[str] = mapped_column(String(32), nullable=False, default="free")
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class RefreshToken(Base):
    """One refresh token of a login session ("family").

    Only a hash is stored. A token is used once; presenting a used token again means it
    leaked, and the whole family is revoked.
    """

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    family: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LedgerEntry(Base):
    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("kind", "ref", name="uq_ledger_kind_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    amount: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_queue", "status", "priority", "created_at"),)
    # Columns left to their server default (``kind``) are not read back on insert: nothing needs
    # them then, and an insert stays one statement that names only the columns it sets.
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    # What the job does: a kind of `animatica.jobs.kinds` (its inputs, its run, its result).
    kind: Mapped[str] = mapped_column(String(32), nullable=False, server_default="animation")
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    stage: Mapped[str] = mapped_column(String(32), nullable=False, default="queued")
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    engine: Mapped[str] = mapped_column(String(16), nullable=False)
    options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    source_name: Mapped[str] = mapped_column(String(128), nullable=False)
    driving_name: Mapped[str] = mapped_column(String(128), nullable=False)
    source_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    driving_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fps: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # What the service changed on its own and the owner should know (a picture scaled down); NULL
    # when there is nothing to say, so that rows written without the column stay valid.
    notes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class Payment(Base):
    """A checkout session, bound to the user who opened it and the plan they chose."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    checkout_id: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    plan_id: Mapped[str] = mapped_column(String(32), nullable=False)
    credits: Mapped[int] = mapped_column(Integer, nullable=False)
    amount_cents: Mapped[int] = mapped_column(Integer, nullable=False)
    currency: Mapped[str] = mapped_column(String(8), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Refunds and disputes name the charge's payment intent, not the checkout session.
    payment_intent: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True, index=True)
    # The most money reported refunded / disputed so far; credits are taken back from these.
    refunded_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    disputed_cents: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")


class WebhookEvent(Base):
    """Provider events already handled; a replayed event id is acknowledged and ignored."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16), nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DistPlan(Base):
    """The segment plan of a job running on Celery workers (see ``jobs/distributed/plans.py``).

    Deleted with its job, so a deleted job leaves no plan behind.
    """

    __tablename__ = "dist_plans"

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    urgency: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_num: Mapped[int] = mapped_column(Integer, nullable=False)
    rate_den: Mapped[int] = mapped_column(Integer, nullable=False)
    has_audio: Mapped[bool] = mapped_column(Boolean, nullable=False)
    total_frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    segment_count: Mapped[int] = mapped_column(Integer, nullable=False)
    best_frame: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The state the plan step computed once for every segment, when the job's kind has any.
    prepared_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    join_state: Mapped[str] = mapped_column(String(8), nullable=False, default="none")
    join_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class DistSegment(Base):
    """One segment of a distributed job: frames ``[start, stop)`` and where its work stands."""

    __tablename__ = "dist_segments"
    __table_args__ = (Index("ix_dist_segments_user_status", "user_id", "status"),)

    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("dist_plans.job_id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, nullable=False)
    urgency: Mapped[int] = mapped_column(Integer, nullable=False)
    start: Mapped[int] = mapped_column(Integer, nullable=False)
    stop: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(8), nullable=False)
    sent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(96), nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LiveUsage(Base):
    """Seconds of live animation a user had on one UTC day: what the plan's daily minutes count."""

    __tablename__ = "live_usage"
    __table_args__ = (UniqueConstraint("user_id", "day", name="uq_live_usage_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)
    seconds: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)


class LiveSession(Base):
    """A live session from its opening to its end, in the database so that any web process can take
    its WebSocket and count a user's open sessions; the engine itself runs in one process's thread.

    ``seen_at`` is renewed while the session runs, so a session whose process died stops counting.
    """

    __tablename__ = "live_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    engine: Mapped[str] = mapped_column(String(16), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    format: Mapped[str] = mapped_column(String(8), nullable=False)
    record: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    source_key: Mapped[str] = mapped_column(String(255), nullable=False)
    source_name: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    end_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    recording_job: Mapped[str | None] = mapped_column(String(32), nullable=True)
