"""Monitoring's tables: samples, hourly rollups, alert states and the checks added by /watch.

Kept identical in shape to the Alembic revisions 0005_monitoring and 0007_watched_checks. An
alert state changes only by a conditional update on its row version (`save_state`): of two
writers that read the same row, one wins and the other changes nothing, so an alert is
announced once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward import db
from steward.db import UTCDateTime, metadata
from steward.monitoring.alerts import BAD, AlertState, Sample

ROLLUP_HOURS_PER_RUN = 72  # a backlog is caught up over several runs, never all at once
ROLLUPS_KEPT = dt.timedelta(days=400)
HOUR = dt.timedelta(hours=1)
ROLLED_UNTIL = "monitoring.rolled_until"  # key in the state table: hours before it are done

samples = sa.Table(
    "monitoring_samples",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("check", sa.String(64), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("details", sa.JSON, nullable=True),
    sa.Index("ix_monitoring_samples_check_time", "check", "time"),
    sa.Index("ix_monitoring_samples_time", "time"),
)

# One row per check and hour: what longer views draw once the raw samples are gone.
rollups = sa.Table(
    "monitoring_rollups",
    metadata,
    sa.Column("check", sa.String(64), primary_key=True),
    sa.Column("hour", UTCDateTime(), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("bad", sa.Integer, nullable=False),
    sa.Column("min", sa.Float, nullable=True),
    sa.Column("mean", sa.Float, nullable=True),
    sa.Column("max", sa.Float, nullable=True),
)

alerts = sa.Table(
    "monitoring_alerts",
    metadata,
    sa.Column("check", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("bad_streak", sa.Integer, nullable=False),
    sa.Column("ok_streak", sa.Integer, nullable=False),
    sa.Column("unknown_streak", sa.Integer, nullable=False),
    sa.Column("streak_since", UTCDateTime(), nullable=True),
    sa.Column("band", sa.String(8), nullable=True),
    sa.Column("since", UTCDateTime(), nullable=True),
    sa.Column("last_notified_at", UTCDateTime(), nullable=True),
    sa.Column("alert_key", sa.String(200), nullable=True),
    sa.Column("muted_until", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.String(8), nullable=True),
    sa.Column("last_value", sa.Float, nullable=True),
    sa.Column("last_at", UTCDateTime(), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Checks added with /watch (configured ones live in CHECKS). `options` is the mapping a CHECKS
# entry parses into (kind, target, alert_above, interval), built again by spec.build on load.
watched_checks = sa.Table(
    "watched_checks",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("chat_id", sa.String(64), nullable=True),
    sa.Column("created_by", sa.BigInteger, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Written by the step; the mute is the user's and is changed only by set_mute.
_STEPPED = [
    f.name for f in dataclasses.fields(AlertState) if f.name not in ("check", "muted_until")
]


@dataclass(frozen=True)
class Rollup:
    hour: dt.datetime
    count: int
    bad: int
    min: float | None
    mean: float | None
    max: float | None


# -- samples -------------------------------------------------------------------------------


def write_samples(engine: Engine, batch: Iterable[Sample]) -> None:
    record(engine, batch, [], db.utcnow())


def read_samples(
    engine: Engine,
    checks: Iterable[str],
    start: dt.datetime,
    end: dt.datetime | None = None,
    *,
    details: bool = True,
) -> dict[str, list[Sample]]:
    """Each check's samples from `start` (to `end`), oldest first. Charts pass details=False:
    decoding every sample's JSON details was a fifth of a /week chart's time."""
    names = list(checks)
    columns = [samples.c.time, samples.c.check, samples.c.status, samples.c.value]
    if details:
        columns.append(samples.c.details)
    query = sa.select(*columns).where(samples.c.check.in_(names), samples.c.time >= start)
    if end is not None:
        query = query.where(samples.c.time < end)
    out: dict[str, list[Sample]] = {name: [] for name in names}
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(samples.c.time, samples.c.id)).all()
    for time, check, status, value, *extra in rows:  # plain tuples: a week is 2,016 a check
        out[check].append(Sample(time, check, status, value, (extra[0] or {}) if extra else {}))
    return out


def last_sample(engine: Engine, check: str) -> Sample | None:
    query = (
        sa.select(samples)
        .where(samples.c.check == check)
        .order_by(samples.c.time.desc(), samples.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        r = conn.execute(query).first()
    return None if r is None else Sample(r.time, r.check, r.status, r.value, r.details or {})


def read_rollups(
    engine: Engine, checks: Iterable[str], start: dt.datetime
) -> dict[str, list[Rollup]]:
    names = list(checks)
    query = (
        sa.select(rollups)
        .where(rollups.c.check.in_(names), rollups.c.hour >= start)
        .order_by(rollups.c.hour)
    )
    out: dict[str, list[Rollup]] = {name: [] for name in names}
    with engine.connect() as conn:
        for r in conn.execute(query):
            out[r.check].append(Rollup(r.hour, r.count, r.bad, r.min, r.mean, r.max))
    return out


# -- retention and rollups -----------------------------------------------------------------


def cleanup(engine: Engine, now: dt.datetime, retention_days: int) -> int:
    """Drop raw samples older than the retention (and very old rollups); return how many.

    Samples of hours not rolled up yet are kept, whatever their age: they are all that is left.
    """
    gone = 0
    with engine.begin() as conn:
        mark = conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == ROLLED_UNTIL))
        if mark is not None:
            cutoff = min(now - dt.timedelta(days=retention_days), dt.datetime.fromisoformat(mark))
            gone = conn.execute(sa.delete(samples).where(samples.c.time < cutoff)).rowcount
        conn.execute(sa.delete(rollups).where(rollups.c.hour < now - ROLLUPS_KEPT))
    return gone


def roll_up(engine: Engine, now: dt.datetime) -> int:
    """Summarise every complete hour not yet summarised (up to a bound); return hours done."""
    current = now.replace(minute=0, second=0, microsecond=0)
    with engine.connect() as conn:
        mark = conn.scalar(sa.select(db.state.c.value).where(db.state.c.key == ROLLED_UNTIL))
        first = conn.scalar(sa.select(sa.func.min(samples.c.time)))
    if mark is not None:
        start = dt.datetime.fromisoformat(mark)
    elif first is not None:
        start = first.replace(minute=0, second=0, microsecond=0)
    else:
        return 0
    end = min(current, start + ROLLUP_HOURS_PER_RUN * HOUR)
    if start >= end:
        return 0
    # Per (check, hour): count, bad, min, sum, values, max.
    groups: dict[tuple[str, dt.datetime], list] = defaultdict(lambda: [0, 0, None, 0.0, 0, None])
    query = sa.select(samples.c.check, samples.c.time, samples.c.status, samples.c.value).where(
        samples.c.time >= start, samples.c.time < end
    )
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=5000).execute(query):
            g = groups[(r.check, r.time.replace(minute=0, second=0, microsecond=0))]
            g[0] += 1
            g[1] += r.status == BAD
            if r.value is not None:
                g[2] = r.value if g[2] is None else min(g[2], r.value)
                g[3] += r.value
                g[4] += 1
                g[5] = r.value if g[5] is None else max(g[5], r.value)
    rows = [
        dict(check=c, hour=h, count=n, bad=b, min=lo, mean=total / k if k else None, max=hi)
        for (c, h), (n, b, lo, total, k, hi) in groups.items()
    ]
    with engine.begin() as conn:
        # Deleting first makes a repeated run (after a crash) replace rather than collide.
        conn.execute(sa.delete(rollups).where(rollups.c.hour >= start, rollups.c.hour < end))
        if rows:
            conn.execute(sa.insert(rollups), rows)
        db.upsert(conn, db.state, {"key": ROLLED_UNTIL}, value=end.isoformat(), updated_at=now)
    return int((end - start) / HOUR)


# -- alert states --------------------------------------------------------------------------


def load_states(engine: Engine, checks: Iterable[str] | None = None) -> dict[str, AlertState]:
    """Stored states; a check without a row gets a fresh OK state (version 0)."""
    query = sa.select(alerts)
    names = None if checks is None else list(checks)
    if names is not None:
        query = query.where(alerts.c.check.in_(names))
    with engine.connect() as conn:
        found = {r.check: _state(r) for r in conn.execute(query)}
    for name in names or ():
        found.setdefault(name, AlertState(check=name))
    return found


def _state(r) -> AlertState:
    return AlertState(
        check=r.check, muted_until=r.muted_until, **{k: r._mapping[k] for k in _STEPPED}
    )


def record(
    engine: Engine,
    batch: Iterable[Sample],
    steps: Iterable[tuple[AlertState, AlertState]],
    now: dt.datetime,
) -> set[str]:
    """Write a tick's samples and apply its alert steps in one transaction.

    Each step `(old, new)` is applied only if the row is still at `old.version` (or, for a
    check without a row, if nobody created one meanwhile). Returns the checks whose step was
    applied: only their events may be announced.
    """
    with engine.begin() as conn:
        return record_in(conn, batch, steps, now)


def record_in(
    conn,
    batch: Iterable[Sample],
    steps: Iterable[tuple[AlertState, AlertState]],
    now: dt.datetime,
) -> set[str]:
    """`record` inside the caller's transaction (with the outbox rows announcing the steps)."""
    rows = [
        dict(time=s.time, check=s.check, status=s.status, value=s.value, details=s.details or None)
        for s in batch
    ]
    won: set[str] = set()
    if rows:
        conn.execute(sa.insert(samples), rows)
    for old, new in steps:
        values = {k: getattr(new, k) for k in _STEPPED}
        values.update(version=old.version + 1, updated_at=now)
        if old.version == 0:
            query = _insert(conn).values(check=new.check, **values).on_conflict_do_nothing()
        else:
            query = (
                sa.update(alerts)
                .where(alerts.c.check == new.check, alerts.c.version == old.version)
                .values(**values)
            )
        # RETURNING rather than rowcount: psycopg reports no row count for an upsert.
        if conn.execute(query.returning(alerts.c.check)).first() is not None:
            won.add(new.check)
    return won


def save_state(engine: Engine, old: AlertState, new: AlertState, now: dt.datetime) -> bool:
    """Store `new` if the row is still at `old.version`; False when someone else moved it first."""
    return new.check in record(engine, [], [(old, new)], now)


def _insert(conn):
    # INSERT ... ON CONFLICT DO NOTHING: a lost race is a row count of 0, not an error that
    # would abort the whole transaction on Postgres.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(alerts)


def set_mute(engine: Engine, check: str, until: dt.datetime | None, now: dt.datetime) -> None:
    """Mute a check's alerts until `until` (None unmutes). The row version is left alone."""
    fresh = {k: getattr(AlertState(check=check), k) for k in _STEPPED}
    fresh.update(version=1, updated_at=now)
    with engine.begin() as conn:
        conn.execute(_insert(conn).values(check=check, **fresh).on_conflict_do_nothing())
        conn.execute(sa.update(alerts).where(alerts.c.check == check).values(muted_until=until))


# -- watched checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class Watched:
    name: str
    kind: str
    options: dict
    chat_id: str | None
    created_by: int | None
    created_at: dt.datetime


def read_watched(engine: Engine) -> list[Watched]:
    query = sa.select(watched_checks).order_by(watched_checks.c.created_at, watched_checks.c.name)
    with engine.connect() as conn:
        return [Watched(**r._mapping) for r in conn.execute(query)]


def add_watched(
    engine: Engine,
    name: str,
    kind: str,
    options: dict,
    chat_id: str | None,
    user_id: int | None,
    now: dt.datetime,
) -> bool:
    """Store a watched check; False when the name is taken (the primary key decides)."""
    row = dict(
        name=name, kind=kind, options=options, chat_id=chat_id, created_by=user_id, created_at=now
    )
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(watched_checks).values(**row))
    except sa.exc.IntegrityError:
        return False
    return True


def remove_watched(
    engine: Engine, name: str, also: Callable[[Connection], None] | None = None
) -> bool:
    """Forget a watched check with its alert state, samples and rollups: a check added later
    under the same name starts afresh. `also(conn)` runs in the same transaction (the check's
    unit of work goes with it). False when there was no such watched check."""
    with engine.begin() as conn:
        gone = conn.execute(sa.delete(watched_checks).where(watched_checks.c.name == name))
        if gone.rowcount != 1:
            return False
        if also is not None:
            also(conn)
        conn.execute(sa.delete(alerts).where(alerts.c.check == name))
        conn.execute(sa.delete(samples).where(samples.c.check == name))
        conn.execute(sa.delete(rollups).where(rollups.c.check == name))
    return True
