"""Open dialogs with their replay logs.

Revision ID: 0006_dialogs
Revises: 0005_monitoring
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0006_dialogs"
down_revision = "0005_monitoring"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dialogs",
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("dialog_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("code_version", sa.Integer, nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("log", sa.JSON, nullable=False),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("question", sa.Integer, nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name="pk_dialogs"),
        sa.UniqueConstraint("dialog_id", name="uq_dialogs_dialog_id"),
    )
    op.create_index("ix_dialogs_expires_at", "dialogs", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_dialogs_expires_at", "dialogs")
    op.drop_table("dialogs")
