"""Monitoring: checks added at run time with /watch.

Revision ID: 0007_watched_checks
Revises: 0006_dialogs
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0007_watched_checks"
down_revision = "0006_dialogs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watched_checks",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("chat_id", sa.String(64), nullable=True),
        sa.Column("created_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_watched_checks"),
    )


def downgrade() -> None:
    op.drop_table("watched_checks")
