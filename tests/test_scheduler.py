"""The schedule survives restarts, coalesces missed runs, and runs each tick on one worker."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa

from steward import db
from steward.features import Job
from steward.scheduler import Scheduler


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[dt.datetime] = []

    async def __call__(self, scheduled_at: dt.datetime) -> None:
        self.ticks.append(scheduled_at)


def scheduler_on(engine, worker: str, job: Job) -> Scheduler:
    scheduler = Scheduler(engine, worker_id=worker)
    scheduler.add(job)
    return scheduler


async def test_it_runs_a_new_job_at_once_and_then_every_interval(engine):
    ticks = Recorder()
    scheduler = scheduler_on(engine, "w1", Job("demo.tick", dt.timedelta(seconds=1), ticks))
    await scheduler.start()
    await asyncio.sleep(2.5)
    await scheduler.stop()
    assert 3 <= len(ticks.ticks) <= 4
    gaps = [(b - a).total_seconds() for a, b in zip(ticks.ticks, ticks.ticks[1:], strict=False)]
    assert all(abs(gap - 1.0) < 0.01 for gap in gaps), gaps


async def test_a_jobs_next_run_time_survives_a_restart(engine):
    ticks = Recorder()
    job = Job("posting.tick", dt.timedelta(minutes=30), ticks)
    first = scheduler_on(engine, "w1", job)
    await first.start()
    await asyncio.sleep(0.3)
    await first.stop()
    assert len(ticks.ticks) == 1
    planned = first.next_runs()["posting.tick"]

    second = scheduler_on(engine, "w2", job)  # a deploy: new process, same database
    await second.start()
    await asyncio.sleep(0.5)
    await second.stop()
    assert len(ticks.ticks) == 1, "a restart must not run a 30-minute job again"
    assert second.next_runs()["posting.tick"] == planned


async def test_missed_runs_coalesce_into_one_at_start(engine):
    ticks = Recorder()
    job = Job("demo.tick", dt.timedelta(seconds=1), ticks)
    first = scheduler_on(engine, "w1", job)
    await first.start()
    await asyncio.sleep(0.2)
    await first.stop()
    await asyncio.sleep(3.2)  # the worker is down across three scheduled runs
    ticks.ticks.clear()
    second = scheduler_on(engine, "w2", job)
    await second.start()
    await asyncio.sleep(0.5)
    await second.stop()
    assert len(ticks.ticks) == 1, "missed runs coalesce into one, run at start"


async def test_a_changed_interval_reschedules_and_a_dropped_job_is_removed(engine):
    ticks = Recorder()
    first = scheduler_on(engine, "w1", Job("a", dt.timedelta(hours=1), ticks))
    first.add(Job("b", dt.timedelta(hours=1), ticks))
    await first.start()
    await asyncio.sleep(0.3)
    await first.stop()
    second = scheduler_on(engine, "w1", Job("a", dt.timedelta(hours=2), ticks))
    await second.start()
    await asyncio.sleep(0.3)
    await second.stop()
    assert set(second.next_runs()) == {"a"}
    assert len(ticks.ticks) == 3  # a and b once, then a again under its new interval


async def test_two_workers_racing_for_the_same_tick_run_it_once(engine):
    ticks = Recorder()
    job = Job("monitoring.tick", dt.timedelta(minutes=5), ticks)
    a, b = scheduler_on(engine, "w1", job), scheduler_on(engine, "w2", job)
    moment = db.utcnow().replace(microsecond=0)
    await asyncio.gather(*(s._run("monitoring.tick", moment) for s in (a, b, a, b)))
    assert ticks.ticks == [moment]
    with engine.connect() as conn:
        claims = conn.execute(sa.select(db.job_claims)).all()
    assert len(claims) == 1 and claims[0].claimed_by in ("w1", "w2")


async def test_two_live_schedulers_on_one_store_never_repeat_a_tick(store_url):
    ticks = Recorder()
    job = Job("demo.tick", dt.timedelta(seconds=1), ticks)
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.upgrade(engines[0])
    schedulers = [scheduler_on(e, f"w{i}", job) for i, e in enumerate(engines)]
    for s in schedulers:
        await s.start()
    await asyncio.sleep(3.3)
    for s in schedulers:
        await s.stop()
    for e in engines:
        e.dispose()
    assert len(ticks.ticks) >= 3
    assert len(ticks.ticks) == len(set(ticks.ticks)), "a scheduled time ran twice"


async def test_stop_lets_a_running_tick_finish_within_the_grace(engine):
    finished = []

    async def slow(scheduled_at):
        await asyncio.sleep(0.5)
        finished.append(scheduled_at)

    scheduler = scheduler_on(engine, "w1", Job("slow", dt.timedelta(hours=1), slow))
    await scheduler.start()
    await asyncio.sleep(0.1)
    await scheduler.stop(grace=2.0)
    assert len(finished) == 1


async def test_stop_cancels_a_tick_that_outlives_the_grace(engine):
    cancelled = []

    async def stuck(scheduled_at):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(scheduled_at)
            raise

    scheduler = scheduler_on(engine, "w1", Job("stuck", dt.timedelta(hours=1), stuck))
    await scheduler.start()
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await scheduler.stop(grace=0.3)
    assert asyncio.get_running_loop().time() - started < 2
    assert len(cancelled) == 1


async def test_a_tick_handed_over_but_never_claimed_runs_at_the_next_start(engine):
    """A SIGKILL between APScheduler storing the next run time and the claim being written."""
    ticks = Recorder()
    job = Job("posting.tick", dt.timedelta(seconds=2), ticks)
    first = scheduler_on(engine, "w1", job)
    await first.start()
    await asyncio.sleep(0.3)
    (started,) = ticks.ticks
    # The run at +2 s is taken (the store moves on to +4 s) and the worker dies before its claim.
    first._aps.modify_job("posting.tick", next_run_time=started + 2 * job.every)
    await first.stop()
    await asyncio.sleep((started + job.every - db.utcnow()).total_seconds() + 0.3)

    second = scheduler_on(engine, "w2", job)
    await second.start()
    await asyncio.sleep(0.5)
    await second.stop()
    assert ticks.ticks == [started, started + job.every]
    assert second.next_runs()["posting.tick"] == started + 2 * job.every, "the cadence is kept"
