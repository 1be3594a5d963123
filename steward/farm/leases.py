"""Units of work shared out between workers through the store: claim, hold, finish.

A unit is a row of `work_units`: (kind, key), due at `due_at`. Any worker claims due units with
one statement: on Postgres the candidates are picked with `FOR UPDATE SKIP LOCKED`, so N workers
claiming at once each get different rows without waiting on each other; the claim writes a
lease (`lease_owner`, `lease_until`). A worker that dies holds its units only until the lease
runs out: then they are due and unleased to everyone else. Finishing a unit is a conditional
update (`WHERE lease_owner = me AND due_at = the due time claimed`) in the caller's transaction,
so the work's own writes and the finish commit together or not at all, and a worker whose lease
was taken over finds a row count of 0 and knows its result was not the one kept.
SQLite has no row locks: the same statement runs under its single writer lock, one worker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.farm.store import work_units as units
from steward.store_health import StoreHealth


@dataclass(frozen=True)
class Unit:
    kind: str
    key: str
    due_at: dt.datetime
    owner: str


def ensure(conn: Connection, kind: str, key: str, due_at: dt.datetime) -> None:
    """Make the unit exist (due at `due_at`) unless it already does."""
    values = {"kind": kind, "key": key, "due_at": due_at, "runs": 0}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    conn.execute(insert(units).values(**values).on_conflict_do_nothing())


def remove(conn: Connection, kind: str, key: str) -> None:
    conn.execute(sa.delete(units).where(units.c.kind == kind, units.c.key == key))


def claim(
    engine: Engine,
    owner: str,
    *,
    now: dt.datetime,
    lease: dt.timedelta,
    limit: int,
    kinds: Iterable[str] | None = None,
    keys: Iterable[str] | None = None,
) -> list[Unit]:
    """Lease up to `limit` due units nobody holds; the oldest due first. `keys`: only these
    (a worker claims only the work it knows how to do)."""
    if limit <= 0:
        return []
    free = sa.or_(units.c.lease_until.is_(None), units.c.lease_until < now)
    pick = sa.select(units.c.kind, units.c.key).where(units.c.due_at <= now, free)
    if kinds is not None:
        pick = pick.where(units.c.kind.in_(list(kinds)))
    if keys is not None:
        pick = pick.where(units.c.key.in_(list(keys)))
    pick = pick.order_by(units.c.due_at).limit(limit).with_for_update(skip_locked=True)
    query = (
        sa.update(units)
        .where(sa.tuple_(units.c.kind, units.c.key).in_(pick))
        .values(lease_owner=owner, lease_until=now + lease, runs=units.c.runs + 1)
        .returning(units.c.kind, units.c.key, units.c.due_at)
    )
    with engine.begin() as conn:
        rows = conn.execute(query).all()
    return [Unit(r.kind, r.key, r.due_at, owner) for r in rows]


def next_due(due: dt.datetime, every: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """The first due time after `now` on the unit's grid (a long stop does not replay ticks)."""
    missed = max(0, int((now - due) / every))
    return due + every * (missed + 1)


def _held(unit: Unit):
    return sa.and_(
        units.c.kind == unit.kind,
        units.c.key == unit.key,
        units.c.lease_owner == unit.owner,
        units.c.due_at == unit.due_at,
    )


def finish(conn: Connection, unit: Unit, *, next_due: dt.datetime, now: dt.datetime) -> bool:
    """Mark the unit done and due again at `next_due`, in the caller's transaction.

    False when this worker no longer holds it (its lease ran out and another took it over):
    the caller must roll back what it wrote with it.
    """
    query = (
        sa.update(units)
        .where(_held(unit))
        .values(due_at=next_due, lease_owner=None, lease_until=None, done_at=now)
    )
    return conn.execute(query).rowcount == 1


def release(engine: Engine, unit: Unit) -> None:
    """Give the unit back undone (a stop, an error): it is due again at once for anyone."""
    with engine.begin() as conn:
        conn.execute(sa.update(units).where(_held(unit)).values(lease_owner=None, lease_until=None))


def extend(engine: Engine, held: Iterable[Unit], *, now: dt.datetime, lease: dt.timedelta) -> int:
    """Renew the leases of units still being worked on; returns how many are still ours."""
    kept = 0
    with engine.begin() as conn:
        for unit in held:
            query = sa.update(units).where(_held(unit)).values(lease_until=now + lease)
            kept += conn.execute(query).rowcount
    return kept


def reschedule(
    conn: Connection, kind: str, key: str, due_at: dt.datetime, *, now: dt.datetime | None = None
) -> bool:
    """Move a unit's due time (a bot's interval changed, a bot was resumed). With `now`, a unit
    someone holds is left alone (moving it would make its holder's finish fail): False then."""
    query = sa.update(units).where(units.c.kind == kind, units.c.key == key)
    if now is not None:
        query = query.where(sa.or_(units.c.lease_until.is_(None), units.c.lease_until < now))
    return conn.execute(query.values(due_at=due_at)).rowcount == 1


def due_at(conn: Connection, kind: str, key: str) -> dt.datetime | None:
    query = sa.select(units.c.due_at).where(units.c.kind == kind, units.c.key == key)
    return conn.scalar(query)


async def claim_loop(
    run_due: Callable[[], Awaitable[int]],
    *,
    feature: str,
    what: str,
    poll: float,
    health: StoreHealth | None = None,
) -> None:
    """Run `run_due()` (claim and do due units; how many it did) for ever: again at once while
    there is work, after `poll` seconds when there is none. A store outage is logged once when it
    starts and once when it ends, not once a second, and reported to `health` (which tells the
    owner of a long one)."""
    log = logging.getLogger(f"steward.{feature}")
    failing = False
    while True:
        count = 0
        try:
            count = await run_due()
            if health is not None:
                health.answered()
            if failing:
                log.info("%s: the store answers again", feature)
            failing = False
        except Exception as exc:
            if not failing:
                log.error("%s: cannot claim %s from the store (%s); retrying", feature, what, exc)
            failing = True
            if health is not None and isinstance(exc, sa.exc.SQLAlchemyError):
                health.failed(exc)
        if not count:
            await asyncio.sleep(poll)
