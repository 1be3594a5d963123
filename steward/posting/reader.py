"""One reader, many writers: the reader account's timeline read once per interval into the store.

The read is a work unit (`reader`/`timeline`; steward/farm/leases.py, which monitoring and
training use too), so of N workers exactly one reads each interval, whether or not the farm has
bots. New posts' words are appended to `farm_words` (each word once, in reading order); a
writer's cursor is the id of the newest word it has drawn, so "words not yet used" by a writer is
the count of ids above its cursor, and every writer (the env-configured bot `main` and each farm
bot) sees the same timeline without asking X again. The reader's health is a `state` row: the
owner hears when it breaks and when it reads again, once per change, however many writers draw
from it.

The tables keep their farm_ names: the farm introduced them (revision 0012_farm).
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward import db
from steward.db import UTCDateTime, metadata

log = logging.getLogger("steward.reader")

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# The reader's timeline, as words in the order they were read; a writer's cursor is an id here.
farm_words = sa.Table(
    "farm_words",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("word", sa.String(100), nullable=False),
    sa.Column("read_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("word", name="uq_farm_words_word"),
)

farm_cursors = sa.Table(
    "farm_cursors",
    metadata,
    sa.Column("bot", sa.String(64), primary_key=True),
    sa.Column("word_id", sa.BigInteger, nullable=False),
)

UNIT_KIND, UNIT_KEY = "reader", "timeline"
SINCE_KEY = "farm.reader.since_id"  # state row: the newest timeline post read
TROUBLE_KEY = "reader.trouble"  # state row: {"reason", "since"} while the reader cannot read
DRAWN = 200  # most unused words a writer draws for one tick
RECENT = 2000  # words a writer falls back on when the reader brought nothing new
MAIN = "main"  # the env-configured bot's cursor

READER_FIX = (
    "Check the reader account's tokens X_READER_ACCESS_TOKEN and X_READER_ACCESS_SECRET "
    "(new ones with python auth_tool.py x), or unset them to use the other word sources."
)


class ReaderError(Exception):
    """The timeline could not be read; `str()` is one sentence."""


def read(engine: Engine, client, *, grab: int, now: dt.datetime) -> int:
    """Read the reader's newest posts once; store their new words. Returns how many."""
    import requests
    import tweepy

    from steward.posting.sources import tokenize

    with engine.connect() as conn:
        since = conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == SINCE_KEY))
    try:
        response = client.get_home_timeline(
            max_results=min(max(grab, 1), 100), since_id=since, user_auth=True
        )
    # tweepy raises its own errors for HTTP answers, but lets requests' network errors through.
    except (tweepy.TweepyException, requests.RequestException) as exc:
        reason = " ".join(str(exc).split())
        raise ReaderError(f"could not read the reader's timeline: {reason}") from None
    data = response.data or []
    newest = (response.meta or {}).get("newest_id") or since
    words = []
    for tweet in reversed(data):  # oldest first, so ids follow reading order
        words += [w for w in tokenize(tweet.text or "") if len(w) <= 100]
    with engine.begin() as conn:
        known = set(conn.scalars(sa.select(farm_words.c.word).where(farm_words.c.word.in_(words))))
        fresh = list(dict.fromkeys(w for w in words if w not in known))
        if fresh:
            conn.execute(sa.insert(farm_words), [{"word": w, "read_at": now} for w in fresh])
        _save(conn, SINCE_KEY, newest, now)
    log.info("reader: %d post(s), %d new word(s)", len(data), len(fresh))
    return len(fresh)


def run_unit(
    engine: Engine, client, outbox, unit, *, grab: int, every: dt.timedelta, now: dt.datetime
) -> bool:
    """The claimed `reader` unit (a leases.Unit): read, then finish it and record the reader's
    health in one transaction. False when the lease was lost meanwhile (another worker's result
    is kept)."""
    from steward.farm import leases  # here: leases.py imports the farm's tables

    error = None
    try:
        read(engine, client, grab=grab, now=now)
    except ReaderError as exc:
        error = str(exc)
        log.warning("reader: %s", error)
    with engine.begin() as conn:
        if not leases.finish(
            conn, unit, next_due=leases.next_due(unit.due_at, every, now), now=now
        ):
            return False
        told = record(conn, outbox, error, now)
    if told:
        outbox.wake()
    return True


def read_if_due(engine: Engine, client, outbox, *, owner: str, grab: int, every, now) -> bool:
    """`python bot.py post` with no worker running: do the read if it is due. True if it ran."""
    from steward.farm import leases

    with engine.begin() as conn:
        leases.ensure(conn, UNIT_KIND, UNIT_KEY, now)
    units = leases.claim(
        engine, owner, now=now, lease=dt.timedelta(minutes=1), limit=1,
        kinds=[UNIT_KIND], keys=[UNIT_KEY],
    )  # fmt: skip
    for unit in units:
        return run_unit(engine, client, outbox, unit, grab=grab, every=every, now=now)
    return False


def _save(conn: Connection, key: str, value, now: dt.datetime) -> None:
    db.upsert(conn, db.state, {"key": key}, value=value, updated_at=now)


# -- the reader's health ---------------------------------------------------------------------


def trouble(conn: Connection) -> dict | None:
    """{"reason", "since"} while the last read failed; None while it reads."""
    return conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == TROUBLE_KEY)) or None


def record(conn: Connection, outbox, error: str | None, now: dt.datetime) -> bool:
    """Store the read's outcome; when the reader broke or reads again, queue the one message
    that says so, in the caller's transaction (the outbox row is the flip). True if queued."""
    from steward.telegram.formatting import esc

    was = trouble(conn)
    if (error is None) == (was is None):
        return False  # no change: told already (the reason's details may move)
    if error is None:
        _save(conn, TROUBLE_KEY, None, now)
        text = "✅ The reader's timeline reads again: its words reach the posts once more."
        outbox.notify_in(conn, text, key=f"reader:ok:{was['since']}")
        return True
    since = now.isoformat()
    _save(conn, TROUBLE_KEY, {"reason": error, "since": since}, now)
    outbox.notify_in(
        conn,
        f"⚠️ Reader: {esc(error)}\nThe bots post from the words read before.\n"
        f"Fix: {esc(READER_FIX)}",
        key=f"reader:broken:{since}",
        urgent=True,
    )
    return True


def forget(conn: Connection, now: dt.datetime) -> None:
    """The reader's tokens were unset: its unit and its health go (no message: nothing broke)."""
    from steward.farm import leases

    leases.remove(conn, UNIT_KIND, UNIT_KEY)
    if trouble(conn) is not None:
        _save(conn, TROUBLE_KEY, None, now)


# -- writers ---------------------------------------------------------------------------------


def draw(conn: Connection, bot: str) -> tuple[list[str], int | None]:
    """The words a writer uses this tick and the cursor to store if the tick commits.

    Unused words first (newest last, as read); when there are none, the recent timeline, so a
    quiet reader does not stop the bot (its dedupe keeps it from repeating a post). A writer
    with no cursor yet (main's first draw) starts with the newest words, not the oldest.
    """
    cursor = conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == bot))
    if cursor is None:
        newest = conn.execute(
            sa.select(farm_words.c.id, farm_words.c.word)
            .order_by(farm_words.c.id.desc())
            .limit(DRAWN)
        ).all()
        return [r.word for r in reversed(newest)], (newest[0].id if newest else None)
    rows = conn.execute(
        sa.select(farm_words.c.id, farm_words.c.word)
        .where(farm_words.c.id > cursor)
        .order_by(farm_words.c.id)
        .limit(DRAWN)
    ).all()
    if rows:
        return [r.word for r in rows], rows[-1].id
    recent = conn.scalars(
        sa.select(farm_words.c.word).order_by(farm_words.c.id.desc()).limit(RECENT)
    )
    return list(recent), None


def advance(conn: Connection, bot: str, word_id: int) -> None:
    forward = farm_cursors.c.word_id < word_id
    db.upsert(conn, farm_cursors, {"bot": bot}, word_id=word_id, only_if=forward)


class SharedTimelineSource:
    """A writer's words from the reader's timeline as stored by the `reader` unit: no X call.

    Main and every farm bot draw through it, each with its own cursor. The cursor moves in the
    transaction that records the post made from the words (posting's Poster calls `recorded`),
    so a crash before the post is recorded leaves the words unused, and a preview (`post
    --dry-run`, /post's drafts), which records nothing, uses none up.
    """

    def __init__(self, engine: Engine, writer: str = MAIN) -> None:
        self.engine = engine
        self.writer = writer
        self.cursor: int | None = None  # where the cursor goes once a post is recorded

    def words(self) -> list[str]:
        from steward.posting.sources import SourceError

        with self.engine.connect() as conn:
            words, self.cursor = draw(conn, self.writer)
            broken = trouble(conn) if not words else None
        if broken:
            # Nothing was ever read: posting is stuck for this reason (the owner heard it from
            # the reader already; problems.record does not tell it twice).
            raise SourceError(broken["reason"])
        return words

    def recorded(self, conn: Connection) -> None:
        if self.cursor is not None:
            advance(conn, self.writer, self.cursor)
