"""The farm's tables: bots, their encrypted secrets, the words-per-bot samples for /farm,
and the generic work units any worker may claim. The shared reader's timeline and cursors
are posting's (steward/posting/reader.py: main reads it too), re-exported here.

Kept identical in shape to the Alembic revisions 0012_farm and 0014_posts_per_bot. A bot's
posts are in posting's `posts` table (steward/posting/store.py), each row naming its bot.
"""

from __future__ import annotations

import sqlalchemy as sa

from steward.db import UTCDateTime, metadata
from steward.posting.reader import farm_cursors, farm_words

__all__ = [
    "bot_secrets",
    "bots",
    "farm_cursors",
    "farm_samples",
    "farm_words",
    "work_units",
]

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

bots = sa.Table(
    "bots",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
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
)

# One row per secret value: (bot, name) -> Fernet token. The value column never holds plain text.
bot_secrets = sa.Table(
    "bot_secrets",
    metadata,
    sa.Column("bot", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

farm_samples = sa.Table(
    "farm_samples",
    metadata,
    sa.Column("bot", sa.String(64), primary_key=True),
    sa.Column("at", UTCDateTime(), primary_key=True),
    sa.Column("stored", sa.Integer, nullable=False),
    sa.Column("unused", sa.Integer, nullable=False),
)

# A unit of work any worker may claim: (kind, key) due at `due_at`, held until `lease_until`.
work_units = sa.Table(
    "work_units",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("done_at", UTCDateTime(), nullable=True),
    sa.Index("ix_work_units_due_at", "due_at"),
)
