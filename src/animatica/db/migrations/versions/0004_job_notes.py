"""Job notes: what the service changed on its own and tells the job's owner.

An uploaded picture larger than the plan's side is scaled down rather than refused, and the
job says so. Existing jobs get none (NULL).

Revision ID: 0004
Revises: 0003
Create Date: 2025-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("notes", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "notes")
