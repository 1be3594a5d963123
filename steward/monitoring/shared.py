"""Configured checks shared by N workers on Postgres: each check's sample is a unit of work.

With `heroku ps:scale worker=N` on Postgres every worker polls the store for due checks and
claims a few at a time with `FOR UPDATE SKIP LOCKED` and a lease (steward/farm/leases.py), so
the checks spread over the workers and each is sampled once per interval. A unit's key carries a
digest of the check's spec: during a deploy's overlap, workers with different CHECKS keep apart
and each claims only the checks it knows. On SQLite (one writer, one worker) the scheduler's
group jobs run every check instead (job.py).

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
from collections.abc import Sequence

from steward.farm import leases
from steward.monitoring.monitor import Monitor
from steward.monitoring.spec import CheckSpec

log = logging.getLogger("steward.monitoring")

KIND = "check"
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


class SharedChecks:
    """One worker's share of the configured checks."""

    def __init__(self, monitor: Monitor, specs: Sequence[CheckSpec], *, batch: int = BATCH):
        self.monitor, self.engine, self.clock = monitor, monitor.engine, monitor.clock
        self.by_key = {unit_key(spec): spec for spec in specs}
        self.batch = batch
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.done = 0
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()  # batches being sampled (the loop's)

    def ensure(self) -> None:
        """Every configured check has its unit (due now when new; kept as it is otherwise)."""
        now = self.clock()
        with self.engine.begin() as conn:
            for key in self.by_key:
                leases.ensure(conn, KIND, key, now)

    async def run_due(self) -> int:
        """Claim up to `batch` due checks, sample them in one tick, finish them; how many."""
        units = await self._claim(self.batch)
        if units:
            await self._sample(units)
        return len(units)

    async def _claim(self, limit: int) -> list[leases.Unit]:
        return await asyncio.to_thread(
            leases.claim, self.engine, self.owner, now=self.clock(), lease=LEASE,
            limit=limit, kinds=[KIND], keys=list(self.by_key),
        )  # fmt: skip

    async def _sample(self, units: list[leases.Unit]) -> None:
        try:
            specs = [self.by_key[u.key] for u in units]
            await self.monitor.tick(specs, min(u.due_at for u in units))
        except BaseException:
            for unit in units:  # due again at once, for any worker
                await asyncio.to_thread(leases.release, self.engine, unit)
            raise
        await asyncio.to_thread(self._finish, units)
        self.done += len(units)

    async def _fill(self) -> int:
        """Top the worker up to IN_FLIGHT checks, each batch sampled in a task of its own; how
        many were claimed. When full, wait (up to POLL) for a batch to end instead."""
        self._running = {t for t in self._running if not t.done()}
        free = IN_FLIGHT - self.batch * len(self._running)
        if free < self.batch:
            await asyncio.wait(self._running, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
            return len(self._running)  # not idle: claim again at once
        units = await self._claim(free)
        for n in range(0, len(units), self.batch):
            task = asyncio.create_task(self._sample(units[n : n + self.batch]))
            task.add_done_callback(_log_failure)
            self._running.add(task)
        return len(units)

    def _finish(self, units: list[leases.Unit]) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            for unit in units:
                every = dt.timedelta(seconds=self.monitor.interval(self.by_key[unit.key]))
                next_due = leases.next_due(unit.due_at, every, now)
                if not leases.finish(conn, unit, next_due=next_due, now=now):
                    log.warning("check %s: lease lost while sampling", self.by_key[unit.key].name)

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
        await leases.claim_loop(self._fill, feature="monitoring", what="checks", poll=POLL)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("checks: a batch failed; its checks are due again: %s", exc, exc_info=exc)
