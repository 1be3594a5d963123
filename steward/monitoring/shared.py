"""Checks shared by N workers on Postgres: each check's sample is a unit of work.

With `heroku ps:scale worker=N` on Postgres every worker polls the store for due checks and
claims a few at a time with `FOR UPDATE SKIP LOCKED` and a lease (steward/farm/leases.py), so
the checks spread over the workers and each is sampled once per interval. A unit's key carries a
digest of the check's spec: during a deploy's overlap, workers with different CHECKS keep apart
and each claims only the checks it knows. On SQLite (one writer, one worker) the scheduler's
group jobs run every check instead (job.py).

Checks added with /watch are units too (kind `WATCHED`, keyed the same way, so an edited check
is a new unit). /watch makes its unit at once and /unwatch deletes it with the check's row, in
one transaction; every worker also reads the watched checks again every `REFRESH` and brings
the units in line with them (a unit for each; none for a check that is gone), which is how a
store deployed before watched units existed gets them, and how a worker learns of a check
another one added.

A worker that dies mid-sample holds its checks until the lease runs out; then another worker
samples them. The unit is finished right after the tick's own transaction, so a crash between
the two samples those checks once more, never zero times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.farm import leases
from steward.farm.store import work_units as units
from steward.monitoring.monitor import Monitor
from steward.monitoring.spec import CheckSpec

log = logging.getLogger("steward.monitoring")

KIND = "check"
WATCHED = "watched_check"  # the unit of a check added with /watch
REFRESH = dt.timedelta(seconds=5)  # how often a worker reads the watched checks again
# Longer than a check can take (its timeout), short enough that a dead worker's checks move on.
LEASE = dt.timedelta(minutes=2)
# Checks sampled (and committed) together: small, because a batch lasts as long as its slowest
# check (one 3 s answer holds the others' units).
BATCH = 8
# Checks one worker has in flight at once, in batches of their own. One batch at a time made a
# worker sample ~4 checks/s when a tenth of the targets answer slowly (bench/farm.py).
IN_FLIGHT = 160
POLL = 1.0  # seconds between claims when nothing was due


def unit_key(spec: CheckSpec) -> str:
    digest = hashlib.sha256(repr(spec).encode()).hexdigest()[:10]
    return f"{spec.name}:{digest}"


def drop_watched(conn: Connection, name: str) -> None:
    """Delete the unit of watched check `name` (in the caller's transaction: /unwatch's)."""
    key = units.c.key.startswith(f"{name}:", autoescape=True)
    conn.execute(sa.delete(units).where(units.c.kind == WATCHED, key))


def watched_units(engine: Engine) -> set[str]:
    """The keys of the watched checks' units."""
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(units.c.key).where(units.c.kind == WATCHED)))


def sync_watched(
    engine: Engine,
    have: set[str],
    specs: Collection[CheckSpec],
    shadowed: Collection[str],
    now: dt.datetime,
) -> None:
    """Give each watched check in `specs` its unit and delete the units in `have` of checks gone.

    `have` must be read before `specs`: /watch commits a check's row before its unit, so a unit
    seen in `have` belongs to a row `specs` holds, and none is deleted for a check being added.
    Units of names this worker's CHECKS shadows are left alone: a worker without that CHECKS
    entry runs them.
    """
    wanted = {unit_key(spec) for spec in specs}
    gone = {key for key in have - wanted if key.rsplit(":", 1)[0] not in shadowed}
    if not gone and wanted <= have:
        return  # the usual case: nothing to write
    with engine.begin() as conn:
        for key in wanted - have:
            leases.ensure(conn, WATCHED, key, now)
        if gone:
            conn.execute(sa.delete(units).where(units.c.kind == WATCHED, units.c.key.in_(gone)))


class SharedChecks:
    """One worker's share of the configured checks and of those added with /watch."""

    def __init__(self, monitor: Monitor, specs: Sequence[CheckSpec], *, batch: int = BATCH):
        self.monitor, self.engine, self.clock = monitor, monitor.engine, monitor.clock
        self.by_key = {unit_key(spec): spec for spec in specs}
        self.watched: dict[str, CheckSpec] = {}  # unit key -> watched check, as last read
        self.batch = batch
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.done = 0
        self._refreshed: dt.datetime | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # batches being sampled (the loop's)
        monitor.units = self  # /watch and /unwatch keep the watched units in step through it

    def ensure(self) -> None:
        """Every configured check has its unit (due now when new; kept as it is otherwise),
        and so has every watched check."""
        now = self.clock()
        with self.engine.begin() as conn:
            for key in self.by_key:
                leases.ensure(conn, KIND, key, now)
        self.refresh()

    def refresh(self) -> None:
        """Read the watched checks again and bring their units in line (call in a thread)."""
        now = self.clock()
        have = watched_units(self.engine)  # first: see sync_watched
        specs = self.monitor.load_watched()
        sync_watched(self.engine, have, specs.values(), self.monitor.configured, now)
        self.monitor.watched = specs
        self.watched = {unit_key(spec): spec for spec in specs.values()}
        self._refreshed = now

    def _spec(self, unit: leases.Unit) -> CheckSpec | None:
        return (self.watched if unit.kind == WATCHED else self.by_key).get(unit.key)

    async def run_due(self) -> int:
        """Claim up to `batch` due checks, sample them in one tick, finish them; how many."""
        claimed = await self._claim(self.batch)
        if claimed:
            await self._sample(claimed)
        return len(claimed)

    async def _claim(self, limit: int) -> list[leases.Unit]:
        now = self.clock()
        if self._refreshed is None or now - self._refreshed >= REFRESH:
            await asyncio.to_thread(self.refresh)
        return await asyncio.to_thread(
            leases.claim, self.engine, self.owner, now=now, lease=LEASE, limit=limit,
            kinds=[KIND, WATCHED], keys=[*self.by_key, *self.watched],
        )  # fmt: skip

    async def _sample(self, claimed: list[leases.Unit]) -> None:
        try:
            specs = {spec.name: spec for u in claimed if (spec := self._spec(u)) is not None}
            if specs:
                await self.monitor.tick(list(specs.values()), min(u.due_at for u in claimed))
        except BaseException:
            for unit in claimed:  # due again at once, for any worker
                await asyncio.to_thread(leases.release, self.engine, unit)
            raise
        await asyncio.to_thread(self._finish, claimed)
        self.done += len(claimed)

    async def _fill(self) -> int:
        """Top the worker up to IN_FLIGHT checks, each batch sampled in a task of its own; how
        many were claimed. When full, wait (up to POLL) for a batch to end instead."""
        self._running = {t for t in self._running if not t.done()}
        free = IN_FLIGHT - self.batch * len(self._running)
        if free < self.batch:
            await asyncio.wait(self._running, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
            return len(self._running)  # not idle: claim again at once
        claimed = await self._claim(free)
        for n in range(0, len(claimed), self.batch):
            task = asyncio.create_task(self._sample(claimed[n : n + self.batch]))
            task.add_done_callback(_log_failure)
            self._running.add(task)
        return len(claimed)

    def _finish(self, claimed: list[leases.Unit]) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            for unit in claimed:
                spec = self._spec(unit)
                if spec is None:
                    continue  # its key matched a unit of the other kind; left to its lease
                every = dt.timedelta(seconds=self.monitor.interval(spec))
                next_due = leases.next_due(unit.due_at, every, now)
                if not leases.finish(conn, unit, next_due=next_due, now=now):
                    log.warning("check %s: its unit was taken over or removed", spec.name)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.ensure)
        self._task = asyncio.create_task(self._loop(), name="monitoring.shared")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._running) if t is not None]
        for task in tasks:  # a cancelled batch gives its units back (_sample)
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _loop(self) -> None:
        await leases.claim_loop(
            self._fill, feature="monitoring", what="checks", poll=POLL,
            health=self.monitor.services.store_health,
        )  # fmt: skip


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("checks: a batch failed; its checks are due again: %s", exc, exc_info=exc)
