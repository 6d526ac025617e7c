"""Refunds and disputes: payments keep their payment intent and the money given back so far.

Stripe names the payment intent, not the checkout session, in refund and dispute events, so a
payment must know its intent to be found again. Existing payments get none (their refunds are
logged as unknown charges) and zero refunded or disputed.

Revision ID: 0003
Revises: 0002
Create Date: 2025-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("payment_intent", sa.String(255), nullable=True))
    op.add_column("payments", sa.Column("refunded_cents", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("payments", sa.Column("disputed_cents", sa.Integer(), nullable=False, server_default="0"))
    # An index, not a constraint: SQLite cannot add a UNIQUE column to an existing table.
    op.create_index("ix_payments_payment_intent", "payments", ["payment_intent"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_payments_payment_intent", table_name="payments")
    op.drop_column("payments", "disputed_cents")
    op.drop_column("payments", "refunded_cents")
    op.drop_column("payments", "payment_intent")
