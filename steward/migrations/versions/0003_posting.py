"""Posts: every text published (or about to be) per channel, unique per normalized text.

Revision ID: 0003_posting
Revises: 0002_telegram
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0003_posting"
down_revision = "0002_telegram"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "posts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=True),
        sa.Column("url", sa.String(500), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("tick", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_posts"),
        sa.UniqueConstraint("text_hash", "channel", name="uq_posts_text_hash_channel"),
    )
    op.create_index("ix_posts_state_id", "posts", ["state", "id"])
    op.create_index("ix_posts_channel_created_at", "posts", ["channel", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_posts_channel_created_at", "posts")
    op.drop_index("ix_posts_state_id", "posts")
    op.drop_table("posts")
