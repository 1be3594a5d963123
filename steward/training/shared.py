"""Training runs shared by N workers on Postgres: each active run's watch is a unit of work.

With `heroku ps:scale worker=N` on Postgres the scheduled watch job (job.py) only sweeps the
store: it marks silent runs stalled or lost, answers finished commands and makes sure every run
worth watching has its unit (kind `run`, key the run's id). Every worker polls for due units and
claims a few at a time with `FOR UPDATE SKIP LOCKED` and a lease (steward/farm/leases.py), then
does that run's watch step: its alerts, its live message's edits, its change of state and final
report. So N workers split the runs, one run's messages come from one worker at a time, and a
dead worker's runs move to the others once its lease runs out. The watch step's own writes stay
conditional updates committed with their outbox rows (bookkeeping.py): a run watched twice
(a lease taken over mid-step) still says everything once. On SQLite the scheduled job watches
every run itself, as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward.farm import leases
from steward.training import store

if TYPE_CHECKING:  # job.py imports this module
    from steward.training.job import Watcher

log = logging.getLogger("steward.training")

KIND = "run"
# Longer than one run's watch step can take (a final report draws a chart), short enough that a
# dead worker's runs are watched again soon.
LEASE = dt.timedelta(minutes=1)
# Runs claimed in one go: small, so that workers polling together each take a share.
BATCH = 4
POLL = 1.0  # seconds between claims when nothing was due


def ensure_units(conn: Connection, run_ids: Iterable[int], now: dt.datetime) -> None:
    """Every run worth watching has its unit (due now when new; kept as it is otherwise)."""
    for run_id in run_ids:
        leases.ensure(conn, KIND, str(run_id), now)


def _told_the_end(conn: Connection, run_id: int) -> bool:
    """The run ended and its end was announced: nothing is left to watch."""
    row = conn.execute(
        sa.select(store.runs.c.state, store.runs.c.notified_state).where(store.runs.c.id == run_id)
    ).first()
    if row is None:
        return True
    return row.state not in store.ACTIVE and row.notified_state == row.state


class SharedRuns:
    """One worker's share of the runs being watched."""

    def __init__(self, watcher: Watcher, *, batch: int = BATCH, every: dt.timedelta) -> None:
        self.watcher, self.engine, self.clock = watcher, watcher.engine, watcher.clock
        self.batch, self.every = batch, every
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.done = 0
        self._task: asyncio.Task | None = None

    async def run_due(self) -> int:
        """Claim up to `batch` due runs, watch each, finish them; how many were watched."""
        units = await asyncio.to_thread(
            leases.claim, self.engine, self.owner, now=self.clock(), lease=LEASE,
            limit=self.batch, kinds=[KIND],
        )  # fmt: skip
        if not units:
            return 0
        said = 0
        try:
            for unit in units:
                said += await asyncio.to_thread(self._watch, unit)
        except BaseException:
            for unit in units:  # due again at once, for any worker
                await asyncio.to_thread(leases.release, self.engine, unit)
            raise
        if said:
            self.watcher.outbox.wake()
        self.done += len(units)
        return len(units)

    def _watch(self, unit: leases.Unit) -> int:
        run_id = int(unit.key)
        said = 0
        try:
            said = self.watcher.watch_run(run_id, self.clock())
        except Exception:  # one run's bad data must not silence the others; tried next time
            log.exception("watching training run %d failed", run_id)
        now = self.clock()
        with self.engine.begin() as conn:
            if _told_the_end(conn, run_id):
                leases.remove(conn, KIND, unit.key)
            elif not leases.finish(
                conn, unit, next_due=leases.next_due(unit.due_at, self.every, now), now=now
            ):
                log.warning("training run %d: lease lost while watching", run_id)
        return said

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="training.shared")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        await leases.claim_loop(
            self.run_due, feature="training", what="runs", poll=POLL,
            health=self.watcher.store_health,
        )  # fmt: skip
