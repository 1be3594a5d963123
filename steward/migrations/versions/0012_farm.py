"""Farm: bots as rows, their encrypted secrets and posts, the shared timeline, work units.

Revision ID: 0012_farm
Revises: 0011_posting
"""

import sqlalchemy as sa
from alembic import op

from steward.db import UTCDateTime

revision = "0012_farm"
down_revision = "0011_posting"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("interval_min", sa.Integer, nullable=False),
        sa.Column("per_tick", sa.Integer, nullable=False),
        sa.Column("words", sa.Text, nullable=True),
        sa.Column("feed_url", sa.String(500), nullable=True),
        sa.Column("targets", sa.JSON, nullable=False),
        sa.Column("monthly_limit", sa.Integer, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_error_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_bots"),
    )
    op.create_table(
        "bot_secrets",
        sa.Column("bot", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("bot", "name", name="pk_bot_secrets"),
    )
    op.create_table(
        "farm_posts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("bot", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("remote_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("tick", UTCDateTime(), nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_farm_posts"),
        sa.UniqueConstraint("bot", "text_hash", "channel", name="uq_farm_posts_bot_text"),
        sa.UniqueConstraint("bot", "tick", "slot", "channel", name="uq_farm_posts_bot_slot"),
    )
    op.create_index("ix_farm_posts_bot_created_at", "farm_posts", ["bot", "created_at"])
    op.create_table(
        "farm_words",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("word", sa.String(100), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_farm_words"),
        sa.UniqueConstraint("word", name="uq_farm_words_word"),
    )
    op.create_table(
        "farm_cursors",
        sa.Column("bot", sa.String(64), nullable=False),
        sa.Column("word_id", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("bot", name="pk_farm_cursors"),
    )
    op.create_table(
        "farm_samples",
        sa.Column("bot", sa.String(64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("stored", sa.Integer, nullable=False),
        sa.Column("unused", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("bot", "at", name="pk_farm_samples"),
    )
    op.create_table(
        "work_units",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_work_units"),
    )
    op.create_index("ix_work_units_due_at", "work_units", ["due_at"])


def downgrade() -> None:
    for table in ("work_units", "farm_samples", "farm_cursors", "farm_words", "farm_posts"):
        op.drop_table(table)
    op.drop_table("bot_secrets")
    op.drop_table("bots")
