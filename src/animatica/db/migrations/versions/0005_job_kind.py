"""Job kinds: what a job does, stored on it, and where a segmented job keeps its prepared state.

Every job so far animated a picture, so existing rows become ``animation`` through the server
default. A plan's ``prepared_key`` names the state its plan step computed once for all of its
segments; existing plans have none (NULL).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("kind", sa.String(32), nullable=False, server_default="animation"))
    op.add_column("dist_plans", sa.Column("prepared_key", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("dist_plans", "prepared_key")
    op.drop_column("jobs", "kind")
