"""One reader, many writers: the reader account's timeline read once per interval into the store.

The read is a work unit (`reader`/`timeline`), so of N workers exactly one reads each interval.
New posts' words are appended to `farm_words` (each word once, in reading order); a writer's
cursor is the id of the newest word it has drawn, so "words not yet used" by a bot is the count
of ids above its cursor, and every writer sees the same timeline without asking X again.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward import db
from steward.farm.store import farm_cursors, farm_samples, farm_words

log = logging.getLogger("steward.farm")

UNIT_KIND, UNIT_KEY = "reader", "timeline"
SINCE_KEY = "farm.reader.since_id"  # state row: the newest timeline post read
DRAWN = 200  # most unused words a writer draws for one tick
RECENT = 2000  # words a writer falls back on when the reader brought nothing new


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


def _save(conn: Connection, key: str, value, now: dt.datetime) -> None:
    db.upsert(conn, db.state, {"key": key}, value=value, updated_at=now)


def draw(conn: Connection, bot: str) -> tuple[list[str], int | None]:
    """The words a writer uses this tick and the cursor to store if the tick commits.

    Unused words first (newest last, as read); when there are none, the recent timeline, so a
    quiet reader does not stop the bot (its dedupe keeps it from repeating a post).
    """
    cursor = conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == bot)) or 0
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


def sample(conn: Connection, bot: str, stored: int, unused: int, now: dt.datetime) -> None:
    """One point of /farm's chart (at most one a minute per bot)."""
    at = now.replace(second=0, microsecond=0)
    conn.execute(sa.delete(farm_samples).where(farm_samples.c.bot == bot, farm_samples.c.at == at))
    conn.execute(sa.insert(farm_samples).values(bot=bot, at=at, stored=stored, unused=unused))


def samples(conn: Connection, since: dt.datetime) -> dict[str, list[tuple[dt.datetime, int, int]]]:
    rows = conn.execute(
        sa.select(farm_samples).where(farm_samples.c.at >= since).order_by(farm_samples.c.at)
    ).all()
    out: dict[str, list[tuple[dt.datetime, int, int]]] = {}
    for r in rows:
        out.setdefault(r.bot, []).append((r.at, r.stored, r.unused))
    return out
