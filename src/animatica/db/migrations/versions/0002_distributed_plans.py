"""Segment plans of distributed jobs: dist_plans and dist_segments, deleted with their job.

A database may already hold these two tables, made on first use outside the migrations and
without foreign keys. Where they exist they are rebuilt here, keeping the rows of jobs that
still exist, so a cluster can be upgraded in the middle of its work.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

import sqlalchemy as sa
from alembic import op

from animatica.db.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PLAN_COLUMNS = (
    "job_id, user_id, urgency, rate_num, rate_den, has_audio, total_frames, segment_count, "
    "best_frame, join_state, join_at, created_at"
)
SEGMENT_COLUMNS = (
    "job_id, idx, user_id, urgency, start, stop, status, sent, queued_at, attempts, frames, worker, done_at"
)
OLD = "_pre0002"  # suffix of the tables made on first use, while their rows are copied


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    legacy = [name for name in ("dist_plans", "dist_segments") if name in existing]
    if "dist_segments" in legacy:
        # Index names are global to a schema; the new table wants this one.
        op.drop_index("ix_dist_segments_user_status", table_name="dist_segments")
    for name in legacy:
        op.rename_table(name, name + OLD)
    op.create_table(
        "dist_plans",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("rate_num", sa.Integer(), nullable=False),
        sa.Column("rate_den", sa.Integer(), nullable=False),
        sa.Column("has_audio", sa.Boolean(), nullable=False),
        sa.Column("total_frames", sa.Integer(), nullable=True),
        sa.Column("segment_count", sa.Integer(), nullable=False),
        sa.Column("best_frame", sa.Integer(), nullable=True),
        sa.Column("join_state", sa.String(8), nullable=False),
        sa.Column("join_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_dist_plans_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", name="pk_dist_plans"),
    )
    op.create_table(
        "dist_segments",
        sa.Column("job_id", sa.String(32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("stop", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=True),
        sa.Column("worker", sa.String(96), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["dist_plans.job_id"],
            name="fk_dist_segments_job_id_dist_plans",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "idx", name="pk_dist_segments"),
    )
    op.create_index("ix_dist_segments_user_status", "dist_segments", ["user_id", "status"])
    if "dist_plans" in legacy:
        op.execute(
            f"INSERT INTO dist_plans ({PLAN_COLUMNS}) SELECT {PLAN_COLUMNS} FROM dist_plans{OLD} "
            "WHERE job_id IN (SELECT id FROM jobs)"
        )
    if "dist_segments" in legacy:
        op.execute(
            f"INSERT INTO dist_segments ({SEGMENT_COLUMNS}) SELECT {SEGMENT_COLUMNS} FROM dist_segments{OLD} "
            "WHERE job_id IN (SELECT job_id FROM dist_plans)"
        )
    for name in legacy:
        op.drop_table(name + OLD)


def downgrade() -> None:
    op.drop_index("ix_dist_segments_user_status", table_name="dist_segments")
    op.drop_table("dist_segments")
    op.drop_table("dist_plans")
