"""Posting's table: every post made, per channel, from pending to sent or failed; and its cursors.

Kept identical in shape to the Alembic revisions 0003_posting, 0011_posting and
0014_posts_per_bot. Every bot's posts are here: `main` (configured by the environment) and the
farm's bots, each row naming its bot; every query is scoped to one bot, so dedupe and the
monthly cap are per bot. A post is recorded as `pending` before it is published, so a restart
neither loses nor repeats it; `(bot, text_hash, channel)` is unique, so of two workers recording
the same text for a bot's channel one gets the row and the other nothing. The post's id (unique
over all bots) keys its publishing: Bluesky's record key and Mastodon's Idempotency-Key.
The text hash is over the normalized text (NFKC, casefolded, whitespace collapsed):
"Hello  World" and "hello world" are the same post to a reader, and to X's duplicate check.
Small values that must survive a restart (the reader timeline's cursor and words) live in the
shared `state` table, under keys made by `bot_key`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward import db
from steward.db import UTCDateTime, metadata

MAIN = "main"  # the bot configured by the environment

# Keys of posting's rows in the shared `state` table (main's; another bot's: see bot_key).
TICK_KEY = "posting.tick"  # {"at": iso, "want": n, "done": bool}: the last tick begun
SKIPPED_KEY = "posting.tick.skipped"  # iso time of the last tick skipped (paused, all blocked)
TICK_JOB = "posting.tick"  # the scheduler's job, whose claims name the ticks due
PAUSED_KEY = "posting.paused"  # {"by": who, "at": iso} while /pause_posting holds
X_RETRY_KEY = "posting.x.retry_at"  # iso time X's rate limit resets
X_AUTH_KEY = "posting.x.refused"  # fingerprint of the credentials X refused

CHANNELS = ("x", "telegram", "dry-run", "mastodon", "bluesky")
STATES = ("pending", "sent", "failed", "skipped")

posts = sa.Table(
    "posts",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("bot", sa.String(64), nullable=False, server_default=MAIN),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("text_hash", sa.String(64), nullable=False),
    # A network, or a farm bot's target with its chat ("telegram:@channel").
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("remote_id", sa.String(300), nullable=True),  # a Bluesky at:// URI is long
    sa.Column("url", sa.String(500), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("tick", UTCDateTime(), nullable=True),
    # Publishing attempts begun: after one, X's "duplicate" may be our own attempt, so it proves
    # the post went out; before any, it means X had the text from elsewhere.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # The worker publishing the post right now, until its lease ends (a deploy overlap: the new
    # worker leaves an in-flight post alone while the old one may still be sending it).
    sa.Column("claimed_by", sa.String(200), nullable=True),
    sa.Column("lease_until", UTCDateTime(), nullable=True),
    # Leading with (bot, text_hash), it also serves "did this bot ever use this text" lookups.
    sa.UniqueConstraint("bot", "text_hash", "channel", name="uq_posts_bot_text_hash_channel"),
    sa.Index("ix_posts_state_id", "state", "id"),
    sa.Index("ix_posts_bot_channel_created_at", "bot", "channel", "created_at"),
)


@dataclass(frozen=True)
class Post:
    id: int
    text: str
    text_hash: str
    channel: str
    state: str
    remote_id: str | None
    url: str | None
    error: str | None
    created_at: dt.datetime
    sent_at: dt.datetime | None
    tick: dt.datetime | None
    attempts: int = 0
    claimed_by: str | None = None
    lease_until: dt.datetime | None = None
    bot: str = MAIN


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """The key two texts share when a reader would call them the same post."""
    return hashlib.sha256(normalize(text).encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=16)
def _used_query(channels: tuple[str, ...] | None) -> sa.Select:
    """Built once per channel set: building the statement costs more than running it."""
    query = sa.select(posts.c.text_hash).where(
        posts.c.bot == sa.bindparam("bot"),
        posts.c.text_hash.in_(sa.bindparam("hashes", expanding=True)),
    )
    if channels is not None:
        query = query.where(posts.c.channel.in_(channels))
    return query.distinct()


def used_hashes(
    conn: Connection,
    hashes: Iterable[str],
    channels: Iterable[str] | None = None,
    *,
    bot: str = MAIN,
) -> set[str]:
    """Which of `hashes` `bot` already recorded (on any of `channels`; None: any channel)."""
    wanted = list(hashes)
    if not wanted:
        return set()
    key = None if channels is None else tuple(sorted(set(channels)))
    return set(conn.scalars(_used_query(key), {"hashes": wanted, "bot": bot}))


def is_used(
    conn: Connection, text_hash: str, channels: Iterable[str] | None = None, *, bot: str = MAIN
) -> bool:
    return bool(used_hashes(conn, [text_hash], channels, bot=bot))


def record_pending(
    conn: Connection,
    *,
    text: str,
    channel: str,
    now: dt.datetime,
    tick: dt.datetime | None = None,
    claim: tuple[str, dt.datetime] | None = None,
    bot: str = MAIN,
) -> int | None:
    """Record a post about to be published; None when `bot` already recorded this text there.

    `claim` is (worker, lease end): the post is recorded as claimed by that worker, its first
    attempt begun, so that nobody else publishes it while the lease holds."""
    if channel.partition(":")[0] not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    values = {
        "bot": bot,
        "text": text,
        "text_hash": text_hash(text),
        "channel": channel,
        "state": "pending",
        "created_at": now,
        "tick": tick,
        "attempts": 1 if claim else 0,
        "claimed_by": claim[0] if claim else None,
        "lease_until": claim[1] if claim else None,
    }
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    query = insert(posts).values(**values).on_conflict_do_nothing().returning(posts.c.id)
    return conn.scalar(query)


def claim(
    conn: Connection,
    post_id: int,
    *,
    worker: str,
    now: dt.datetime,
    lease_until: dt.datetime,
    gone: str | None = None,
) -> int | None:
    """Take a pending post to publish it now: the attempts begun before this one, or None when
    it is not pending any more or another worker's lease on it still holds. `gone` names a
    claimant known to be dead (whatever its lease says)."""
    free = sa.or_(
        posts.c.claimed_by.is_(None), posts.c.claimed_by == worker, posts.c.lease_until < now
    )
    if gone is not None:
        free = sa.or_(free, posts.c.claimed_by == gone)
    query = (
        sa.update(posts)
        .where(posts.c.id == post_id, posts.c.state == "pending", free)
        .values(attempts=posts.c.attempts + 1, claimed_by=worker, lease_until=lease_until)
        .returning(posts.c.attempts)
    )
    attempts = conn.scalar(query)
    return None if attempts is None else attempts - 1


def release(conn: Connection, post_id: int, worker: str) -> bool:
    """Give up the claim on a post still pending (it waits for a retry, by anyone)."""
    query = (
        sa.update(posts)
        .where(posts.c.id == post_id, posts.c.state == "pending", posts.c.claimed_by == worker)
        .values(claimed_by=None, lease_until=None)
    )
    return conn.execute(query).rowcount == 1


def _finish(conn: Connection, post_id: int, state: str, **values: Any) -> bool:
    """Move a pending post to its end state; False when it was not pending (someone else did)."""
    query = (
        sa.update(posts)
        .where(posts.c.id == post_id, posts.c.state == "pending")
        .values(state=state, claimed_by=None, lease_until=None, **values)
    )
    return conn.execute(query).rowcount == 1


def mark_sent(
    conn: Connection,
    post_id: int,
    *,
    now: dt.datetime,
    remote_id: str | None = None,
    url: str | None = None,
) -> bool:
    return _finish(conn, post_id, "sent", sent_at=now, remote_id=remote_id, url=url)


def mark_failed(conn: Connection, post_id: int, *, error: str) -> bool:
    return _finish(conn, post_id, "failed", error=error)


def mark_skipped(conn: Connection, post_id: int, *, reason: str) -> bool:
    """A post deliberately not published (the monthly cap, a paused channel)."""
    return _finish(conn, post_id, "skipped", error=reason)


def month_count(
    conn: Connection, month_start: dt.datetime, channel: str = "x", *, bot: str = MAIN
) -> int:
    """`bot`'s posts on `channel` sent or on their way since `month_start` (its monthly cap)."""
    query = sa.select(sa.func.count()).where(
        posts.c.bot == bot,
        posts.c.channel == channel,
        posts.c.state.in_(("pending", "sent")),
        posts.c.created_at >= month_start,
    )
    return int(conn.scalar(query) or 0)


def _post(row: Any) -> Post:
    return Post(**{c.name: getattr(row, c.name) for c in posts.columns})


def recent(conn: Connection, limit: int = 10, *, bot: str = MAIN) -> list[Post]:
    """`bot`'s newest posts first, on every channel and in every state."""
    query = sa.select(posts).where(posts.c.bot == bot).order_by(posts.c.id.desc()).limit(limit)
    return [_post(r) for r in conn.execute(query)]


def pending(
    conn: Connection,
    channel: str | None = None,
    *,
    free_at: dt.datetime | None = None,
    bot: str = MAIN,
) -> list[Post]:
    """`bot`'s posts recorded but not yet published (left by a stop mid-tick), oldest first;
    with `free_at`, only those nobody holds a lease on at that time (whose claimant is gone)."""
    query = (
        sa.select(posts).where(posts.c.bot == bot, posts.c.state == "pending").order_by(posts.c.id)
    )
    if free_at is not None:
        query = query.where(sa.or_(posts.c.lease_until.is_(None), posts.c.lease_until < free_at))
    if channel is not None:
        query = query.where(posts.c.channel == channel)
    return [_post(r) for r in conn.execute(query)]


# -- small persistent values ---------------------------------------------------------------


def load_value(conn: Connection, key: str) -> Any:
    return conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == key))


def save_value(conn: Connection, key: str, value: Any, now: dt.datetime) -> None:
    db.upsert(conn, db.state, {"key": key}, value=value, updated_at=now)


def slots_taken(conn: Connection, prefix: str) -> set[int]:
    """The slot numbers of a tick already owned (`<prefix><n>` rows)."""
    keys = conn.scalars(sa.select(db.state.c.key).where(db.state.c.key.startswith(prefix)))
    return {int(k.rsplit(":", 1)[1]) for k in keys}


def forget_state(conn: Connection, prefix: str, before: dt.datetime) -> None:
    query = sa.delete(db.state).where(
        db.state.c.key.startswith(prefix), db.state.c.updated_at < before
    )
    conn.execute(query)


def bot_key(key: str, bot: str = MAIN) -> str:
    """The one place a bot's `state` and outbox keys are named: main keeps the keys a deployed
    store already has; another bot's are prefixed (`farm.haiku.posting.tick`), so its tick,
    slots, pause, per-channel holds, problems and owner alerts are its own."""
    return key if bot == MAIN else f"farm.{bot}.{key}"


def forget_bot(conn: Connection, bot: str) -> None:
    """Drop a removed bot's posting state rows (never main's; its posts stay)."""
    if bot != MAIN:
        prefix = bot_key("posting", bot)
        conn.execute(sa.delete(db.state).where(db.state.c.key.startswith(prefix)))


def refused_key(channel: str, bot: str = MAIN) -> str:
    return bot_key(X_AUTH_KEY if channel == "x" else f"posting.{channel}.refused", bot)


def retry_key(channel: str, bot: str = MAIN) -> str:
    return bot_key(X_RETRY_KEY if channel == "x" else f"posting.{channel}.retry_at", bot)
