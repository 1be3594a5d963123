"""The table of open dialogs: one row per chat, holding the replay log of its coroutine."""

from __future__ import annotations

import sqlalchemy as sa

from steward.db import UTCDateTime, metadata

dialogs = sa.Table(
    "dialogs",
    metadata,
    # One open dialog per chat: the primary key is the rule, and claiming it is atomic.
    sa.Column("chat_id", sa.String(64), primary_key=True),
    sa.Column("dialog_id", sa.String(32), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("code_version", sa.Integer, nullable=False),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("args", sa.JSON, nullable=False),
    # Answers and side-effect results in the order the coroutine consumed them.
    sa.Column("log", sa.JSON, nullable=False),
    # Optimistic concurrency: every write is `WHERE rev = :rev`, so two processes handling
    # answers for one chat at once cannot both advance the dialog.
    sa.Column("rev", sa.Integer, nullable=False),
    sa.Column("question", sa.Integer, nullable=False),  # number of the open question
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
sa.Index("ix_dialogs_expires_at", dialogs.c.expires_at)
