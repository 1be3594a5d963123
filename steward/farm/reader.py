"""The farm's side of the shared reader (steward/posting/reader.py): /farm's chart samples.

The reader itself (its read, the writers' draws and cursors) is posting's, since the
env-configured bot `main` is one of its writers; its names are re-exported here for farm modules.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward.farm.store import farm_samples
from steward.posting.reader import (
    DRAWN,
    RECENT,
    UNIT_KEY,
    UNIT_KIND,
    ReaderError,
    advance,
    draw,
    read,
)

__all__ = [
    "DRAWN",
    "RECENT",
    "UNIT_KEY",
    "UNIT_KIND",
    "ReaderError",
    "advance",
    "draw",
    "read",
    "sample",
    "samples",
]


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
