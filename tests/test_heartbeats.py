"""The worker watches itself: a tick a dead worker left running runs again (for every job), each
job's last good run is recorded, a late job is told to the owner once, and `python bot.py
status` says plainly whether a worker runs."""

from __future__ import annotations

import asyncio
import datetime as dt

import sqlalchemy as sa

from steward import db, heartbeats
from steward.features import Job
from steward.scheduler import Scheduler
from steward.telegram.outbox import Outbox
from steward.telegram.store import outbox as outbox_table
from tests.worker_process import WorkerProcess, clean_env


def later(delta: dt.timedelta):
    return lambda: db.utcnow() + delta


async def test_a_tick_left_running_by_a_dead_worker_runs_again_on_another(engine):
    started: list[dt.datetime] = []
    finished: list[dt.datetime] = []

    async def tick(scheduled_at: dt.datetime) -> None:
        started.append(scheduled_at)
        if len(started) == 1:
            await asyncio.sleep(60)  # the first worker dies in here
        finished.append(scheduled_at)

    job = Job("monitoring.tick", dt.timedelta(hours=1), tick)
    dying = Scheduler(engine, worker_id="dying")
    dying.add(job)
    await dying.start()
    while not started:
        await asyncio.sleep(0.02)
    await dying.stop(grace=0.1)  # its tick is cut off; its beats stop
    assert finished == []

    # A minute later another worker looks for ticks whose beats stopped before they finished.
    other = Scheduler(engine, worker_id="other", clock=later(dt.timedelta(minutes=1)))
    other.add(job)
    assert await other.rescue() == 1
    while not finished:
        await asyncio.sleep(0.02)
    assert await other.rescue() == 0, "a rescued tick is not taken twice"
    await asyncio.sleep(0.1)
    await other.stop()
    assert finished == [started[0]]
    with engine.connect() as conn:
        claim = conn.execute(sa.select(db.job_claims)).one()
    assert claim.claimed_by == "other" and claim.finished_at is not None


async def test_each_tick_records_its_last_good_run_and_its_last_failure(engine):
    outcomes = iter([None, "the API said no"])

    async def tick(scheduled_at: dt.datetime) -> None:
        if (problem := next(outcomes)) is not None:
            raise RuntimeError(problem)

    scheduler = Scheduler(engine, worker_id="w1")
    scheduler.add(Job("posting.tick", dt.timedelta(hours=1), tick))
    first, second = db.utcnow().replace(microsecond=0), db.utcnow().replace(microsecond=0)
    second += dt.timedelta(hours=1)
    await scheduler._run("posting.tick", first)
    await scheduler._run("posting.tick", second)
    await scheduler.stop()  # waits for the ends of the ticks to be recorded
    (health,) = heartbeats.health(engine, second, since=first)
    assert health.last_ok_at == first
    assert health.last_failure == "RuntimeError: the API said no"
    assert health.every == dt.timedelta(hours=1) and not health.late


def test_a_late_job_is_told_to_the_owner_once_in_one_urgent_message(engine):
    outbox = Outbox(engine, "42")
    now = db.utcnow()
    heartbeats.register(engine, "posting.tick", dt.timedelta(minutes=5), now)
    heartbeats.seen(engine, "w1", now - dt.timedelta(minutes=30), now)
    since = heartbeats.alive_since(engine, now)
    (job,) = heartbeats.health(engine, now, since)
    assert job.late, "no good run in 30 minutes of a 5-minute job"
    assert heartbeats.tell_late(engine, outbox, job, "posting.tick is late", now)
    assert not heartbeats.tell_late(engine, outbox, job, "posting.tick is late", now)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(outbox_table.c.text, outbox_table.c.urgent)).all()
    assert [(r.text, r.urgent) for r in rows] == [("posting.tick is late", True)]


def test_status_says_plainly_when_no_worker_runs_and_shows_last_good_runs(tmp_path):
    with WorkerProcess(clean_env(), tmp_path, "status") as status:
        assert status.proc.wait(timeout=60) == 0, status.output
    assert "no worker is running" in status.output

    with WorkerProcess(clean_env(), tmp_path) as worker:
        worker.wait_ready()
        worker.wait_for(r"tick steward\.watchdog|steward ")
        with WorkerProcess(clean_env(), tmp_path, "status") as status:
            assert status.proc.wait(timeout=60) == 0, status.output
        worker.terminate()
    assert "no worker is running" not in status.output
    assert "Last good runs" in status.output and "steward.watchdog" in status.output


async def test_a_tick_that_failed_on_the_store_runs_again_once_its_beats_are_silent(engine):
    calls: list[dt.datetime] = []

    async def tick(scheduled_at: dt.datetime) -> None:
        calls.append(scheduled_at)
        if len(calls) == 1:
            raise sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    job = Job("monitoring.tick", dt.timedelta(hours=1), tick)
    first = Scheduler(engine, worker_id="w1")
    first.add(job)
    at = db.utcnow().replace(microsecond=0)
    await first._run("monitoring.tick", at)
    await first.stop()
    later_on = Scheduler(engine, worker_id="w1", clock=later(dt.timedelta(minutes=1)))
    later_on.add(job)
    assert await later_on.rescue() == 1
    while len(calls) < 2:
        await asyncio.sleep(0.02)
    await later_on.stop()
    assert calls == [at, at]
    (health,) = heartbeats.health(engine, db.utcnow(), since=at)
    assert health.last_ok_at == at


def test_only_a_jobs_newest_abandoned_tick_runs_again(engine):
    now = db.utcnow()
    old, new = now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)
    with engine.begin() as conn:
        for at in (old, new):
            conn.execute(
                db.job_claims.insert().values(
                    job="monitoring.tick", scheduled_at=at, claimed_by="dead", claimed_at=at
                )
            )
    assert heartbeats.abandoned(engine, ["monitoring.tick"], now) == [("monitoring.tick", new)]


def test_a_job_is_not_late_before_a_newly_started_worker_had_time_to_run_it(engine):
    now = db.utcnow()
    heartbeats.register(engine, "posting.tick", dt.timedelta(minutes=5), now)
    with engine.begin() as conn:  # its last good run was yesterday, before a night without worker
        conn.execute(sa.update(db.job_heartbeats).values(last_ok_at=now - dt.timedelta(days=1)))
    heartbeats.seen(engine, "w1", now - dt.timedelta(seconds=20), now)
    (job,) = heartbeats.health(engine, now, heartbeats.alive_since(engine, now))
    assert not job.late
    started = now - dt.timedelta(seconds=20)
    (job,) = heartbeats.health(engine, now + dt.timedelta(minutes=11), started)
    assert job.late
