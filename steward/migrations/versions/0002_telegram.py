"""The outbox: queued notifications, the sender lease, chat mutes and chat moves.

Revision ID: 0002_telegram
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0002_telegram"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column("chat_id", sa.String(100), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("photo", sa.LargeBinary(), nullable=True),
        sa.Column("caption", sa.Text(), nullable=True),
        sa.Column("document_name", sa.String(255), nullable=True),
        sa.Column("document", sa.LargeBinary(), nullable=True),
        sa.Column("buttons", sa.JSON(), nullable=True),
        sa.Column("reply_to", sa.String(200), nullable=True),
        sa.Column("edit", sa.String(200), nullable=True),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("parts_sent", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.UniqueConstraint("key", name="uq_outbox_key"),
    )
    op.create_index("ix_outbox_state_chat_id", "outbox", ["state", "chat_id", "id"])
    op.create_table(
        "outbox_lease",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_outbox_lease"),
    )
    op.create_table(
        "outbox_mutes",
        sa.Column("chat_id", sa.String(100), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id", name="pk_outbox_mutes"),
    )
    op.create_table(
        "outbox_chat_moves",
        sa.Column("old_chat_id", sa.String(100), nullable=False),
        sa.Column("new_chat_id", sa.String(100), nullable=False),
        sa.Column("moved_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("old_chat_id", name="pk_outbox_chat_moves"),
    )


def downgrade() -> None:
    op.drop_table("outbox_chat_moves")
    op.drop_table("outbox_mutes")
    op.drop_table("outbox_lease")
    op.drop_index("ix_outbox_state_chat_id", "outbox")
    op.drop_table("outbox")
