"""Live mode: the seconds of live animation each user had per UTC day, and the open live sessions.

``live_usage`` holds one row per user and day, added to while a session runs, which the plan's
daily live minutes are counted against. ``live_sessions`` records each session from its opening
to its end, so any web process can take a session's WebSocket and count a user's open sessions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from animatica.db.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_live_usage_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_live_usage"),
        sa.UniqueConstraint("user_id", "day", name="uq_live_usage_user_id"),
    )
    op.create_table(
        "live_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("record", sa.Boolean(), nullable=False),
        sa.Column("source_key", sa.String(255), nullable=False),
        sa.Column("source_name", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("connected_at", UTCDateTime(), nullable=True),
        sa.Column("seen_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(255), nullable=True),
        sa.Column("recording_job", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_live_sessions_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_live_sessions"),
    )
    op.create_index("ix_live_sessions_user_id", "live_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_live_sessions_user_id", table_name="live_sessions")
    op.drop_table("live_sessions")
    op.drop_table("live_usage")
