"""Uptime: the share of a check's samples that were not bad, over the last 24 h, 7 d and 30 d.

Hours already rolled up are counted from the hourly rollups (raw samples may be gone past
SAMPLES_RETENTION_DAYS), the hours after them from the raw samples. Samples that could not be
evaluated count as up: the check could not say it was down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db
from steward.monitoring import store

WINDOWS = {"24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30)}


def uptime(
    engine: Engine, checks: Iterable[str], now: dt.datetime
) -> dict[str, dict[str, float | None]]:
    """Each check's uptime in percent per window ("24h", "7d", "30d"); None without samples."""
    names = list(checks)
    out: dict[str, dict[str, float | None]] = {name: {} for name in names}
    if not names:
        return out
    s, r = store.samples, store.rollups
    with engine.connect() as conn:
        mark = conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == store.ROLLED_UNTIL))
        rolled_until = dt.datetime.fromisoformat(mark) if mark else None
        for label, window in WINDOWS.items():
            start = now - window
            counts = {name: [0, 0] for name in names}
            raw_from = start
            if rolled_until is not None and rolled_until > start:
                raw_from = rolled_until
                hours = (
                    sa.select(r.c.check, sa.func.sum(r.c.count), sa.func.sum(r.c.bad))
                    .where(r.c.check.in_(names), r.c.hour >= start, r.c.hour < rolled_until)
                    .group_by(r.c.check)
                )
                for check, n, bad in conn.execute(hours):
                    counts[check][0] += int(n or 0)
                    counts[check][1] += int(bad or 0)
            is_bad = sa.case((s.c.status == "bad", 1), else_=0)
            raw = (
                sa.select(s.c.check, sa.func.count(), sa.func.sum(is_bad))
                .where(s.c.check.in_(names), s.c.time >= raw_from)
                .group_by(s.c.check)
            )
            for check, n, bad in conn.execute(raw):
                counts[check][0] += int(n or 0)
                counts[check][1] += int(bad or 0)
            for name, (n, bad) in counts.items():
                out[name][label] = 100.0 * (n - bad) / n if n else None
    return out


def percent(value: float | None) -> str:
    """99.95% as a person reads it: two decimals near 100, none when whole, — without data."""
    if value is None:
        return "—"
    if value == 100.0:
        return "100%"
    return f"{value:.2f}%" if value >= 99 else f"{value:.1f}%"


def summary(values: dict[str, float | None]) -> str:
    """`99.95% 24h · 99.9% 7d · 99.99% 30d`."""
    return " · ".join(f"{percent(values.get(label))} {label}" for label in WINDOWS)
