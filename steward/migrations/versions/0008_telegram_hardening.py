"""Telegram: the strangers' refusal memory survives restarts.

Revision ID: 0008_telegram_hardening
Revises: 0007_watched_checks
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0008_telegram_hardening"
down_revision = "0007_watched_checks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telegram_refusals",
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("refused_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_telegram_refusals"),
    )


def downgrade() -> None:
    op.drop_table("telegram_refusals")
