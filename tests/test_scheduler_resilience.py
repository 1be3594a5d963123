"""The scheduler rides out store errors: a failed job-store write neither stops the ticks nor
freezes the event loop, and nothing is lost or repeated."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time

import sqlalchemy as sa

from steward import db
from steward.features import Job
from steward.scheduler import Scheduler


class StoreFault:
    """Makes statements that match `needle` fail at the driver, as a connection reset would."""

    def __init__(self, engine, needle: str) -> None:
        self.needle = needle
        self.failures = 0
        self.on = False
        sa.event.listen(engine, "before_cursor_execute", self._check)

    def _check(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and self.needle in statement:
            self.failures += 1
            raise sa.exc.OperationalError(statement, parameters, Exception("connection reset"))


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[dt.datetime] = []

    async def __call__(self, scheduled_at: dt.datetime) -> None:
        self.ticks.append(scheduled_at)


async def wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_failed_job_store_update_does_not_stop_the_ticks(engine, caplog):
    ticks = Recorder()
    fault = StoreFault(engine, "UPDATE apscheduler_jobs")
    scheduler = Scheduler(engine, worker_id="w1", store_retry=0.5)
    scheduler.add(Job("demo.tick", dt.timedelta(seconds=1), ticks))
    await scheduler.start()
    try:
        await wait_until(lambda: len(ticks.ticks) >= 1)
        with caplog.at_level(logging.WARNING, logger="steward.scheduler"):
            fault.on = True
            await wait_until(lambda: fault.failures >= 2)
            fault.on = False
            before = len(ticks.ticks)
            await wait_until(lambda: len(ticks.ticks) >= before + 2, timeout=10)
    finally:
        await scheduler.stop()
    assert len(ticks.ticks) == len(set(ticks.ticks)), "a scheduled time ran twice"
    lines = [r for r in caplog.records if r.name == "steward.scheduler"]
    assert lines and all(r.exc_info is None for r in lines), "one line per failure, no traceback"


async def test_a_tick_whose_claim_fails_runs_once_the_store_is_back(engine):
    ticks = Recorder()
    fault = StoreFault(engine, "INSERT INTO job_claims")
    scheduler = Scheduler(engine, worker_id="w1", store_retry=0.2)
    scheduler.add(Job("demo.tick", dt.timedelta(hours=1), ticks))
    fault.on = True
    await scheduler.start()
    try:
        await wait_until(lambda: fault.failures >= 2)
        fault.on = False
        await wait_until(lambda: len(ticks.ticks) == 1)
    finally:
        await scheduler.stop()


async def test_the_job_store_is_read_off_the_event_loop(store_url):
    engine = db.make_engine(store_url)
    db.upgrade(engine)
    slow = threading.Event()

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _slow_store(conn, cursor, statement, parameters, context, executemany):
        if slow.is_set() and "apscheduler_jobs" in statement:
            time.sleep(0.4)  # a locked SQLite file, a slow network to Postgres

    ticks = Recorder()
    scheduler = Scheduler(engine, worker_id="w1")
    scheduler.add(Job("demo.tick", dt.timedelta(seconds=0.3), ticks))
    await scheduler.start()
    slow.set()
    loop = asyncio.get_running_loop()
    worst, last = 0.0, loop.time()
    try:
        until = last + 3.0
        while loop.time() < until:
            await asyncio.sleep(0.01)
            now = loop.time()
            worst, last = max(worst, now - last), now
    finally:
        slow.clear()
        await scheduler.stop()
        engine.dispose()
    assert len(ticks.ticks) >= 2
    assert worst < 0.3, f"the event loop froze for {worst:.2f}s on the job store"
