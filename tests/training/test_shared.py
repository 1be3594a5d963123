"""N workers on Postgres split the training runs: each run's watch is a unit one worker claims
(real client writing runs, a real Postgres store, each worker with its own watcher and outbox)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.farm import leases
from steward.features import Services
from steward.telegram import store as tg_store
from steward.telegram.outbox import Outbox
from steward.training import Run, job, shared
from steward.training.job import build_feature, live_key
from tests.training.conftest import create_tables
from tests.training.world import UPDATE_EVERY
from tests.worker_process import ROOT, WorkerProcess, clean_env


@pytest.fixture
def url(pg_url) -> str:
    """These tests are about Postgres: the world's store is a fresh Postgres schema."""
    engine = db.make_engine(pg_url)
    create_tables(engine)
    engine.dispose()
    return pg_url


def worker(world) -> shared.SharedRuns:
    """One worker's watcher (sweeping, not watching runs itself) and its share of the runs."""
    watcher = world.watcher()
    watcher.shares_runs = True
    return shared.SharedRuns(watcher, batch=2, every=job.WATCH_EVERY)


async def tick(one: shared.SharedRuns, two: shared.SharedRuns) -> None:
    """One scheduled tick (won by one worker), then both workers watch until nothing is due."""
    await asyncio.to_thread(one.watcher.watch_once)
    while sum(await asyncio.gather(one.run_due(), two.run_due())):
        pass


def test_two_workers_split_the_runs_and_say_each_runs_news_once(world):
    one, two = worker(world), worker(world)
    runs = [world.run(f"r{i}") for i in range(6)]
    for run in runs:
        for step in range(1, 5):
            run.log(step=step, loss=1 / step)
        run.log(step=5, loss=math.nan)
        run.flush()

    async def scenario() -> None:
        await tick(one, two)  # each run's live message and NaN alert
        world.clock.skip(job.WATCH_EVERY.total_seconds())
        await tick(one, two)  # nothing new: no message
        world.clock.skip(UPDATE_EVERY)
        for run in runs:
            run.log(step=6, loss=0.1)
            run.flush()
        await tick(one, two)  # one progress edit each
        for run in runs:
            run.close()
        world.clock.skip(job.WATCH_EVERY.total_seconds())
        await tick(one, two)  # the ends: each a last edit and a report

    asyncio.run(scenario())
    keys = [r.key for r in world.rows()]
    for run in runs:
        live = live_key(run.id)
        assert keys.count(live) == 1
        assert len([k for k in keys if k.startswith(f"training:{run.id}:nan:")]) == 1
        assert len([k for k in keys if k.startswith(f"{live}@")]) == 1
        assert keys.count(f"training:{run.id}:end") == 1
    assert len(keys) == 5 * len(runs)
    assert one.done > 0 and two.done > 0, "both workers took a share of the runs"
    with world.engine.connect() as conn:
        left = [leases.due_at(conn, shared.KIND, str(run.id)) for run in runs]
    assert left == [None] * len(runs), "a run told of its end is no longer a unit of work"


def test_a_dead_workers_run_goes_to_the_other_once_its_lease_runs_out(world):
    dead, alive = worker(world), worker(world)
    run = world.run("orphan")
    run.log(step=1, loss=math.nan)
    run.flush()
    dead.watcher.watch_once()  # the sweep makes the run a unit of work
    taken = leases.claim(
        world.engine, dead.owner, now=world.clock(), lease=shared.LEASE, limit=5, kinds=["run"]
    )  # it claimed the run, then died before watching it
    assert [u.key for u in taken] == [str(run.id)]

    async def scenario() -> tuple[int, int]:
        first = await alive.run_due()  # the dead worker's lease still holds: one worker at a time
        world.clock.skip(shared.LEASE.total_seconds() + 1)
        return first, await alive.run_due()

    assert asyncio.run(scenario()) == (0, 1)
    keys = [r.key for r in world.rows()]
    assert keys.count(live_key(run.id)) == 1
    assert len([k for k in keys if ":nan:" in k]) == 1
    run.close()


def services(engine, clock=db.utcnow) -> Services:
    settings = load_settings({}, env_file=None)
    return Services(settings=settings, engine=engine, outbox=Outbox(engine, "1001"), clock=clock)


def test_on_postgres_the_tick_sweeps_and_leaves_the_runs_to_the_shared_units(world):
    feature = build_feature(services(world.engine, world.clock))
    assert feature.start is not None and feature.stop is not None, "each worker claims runs"
    run = world.run("swept")
    run.log(step=1, loss=1.0)
    run.flush()
    sweeping = worker(world).watcher
    assert sweeping.watch_once() == 0, "the run's live message is the claiming worker's to send"
    assert world.rows() == []
    with world.engine.connect() as conn:
        assert leases.due_at(conn, shared.KIND, str(run.id)) is not None
    run.close()


def test_on_sqlite_the_scheduled_tick_watches_every_run_as_before(sqlite_url):
    engine = db.make_engine(sqlite_url)
    create_tables(engine)
    feature = build_feature(services(engine))
    assert [j.name for j in feature.jobs] == ["training.watch"]
    assert feature.start is None and feature.stop is None
    engine.dispose()


def test_a_started_worker_claims_and_watches_runs_on_its_own(world):
    feature = build_feature(services(world.engine, world.clock))
    run = world.run("looped")
    run.log(step=1, loss=1.0)
    run.flush()

    async def scenario() -> list[str]:
        await feature.start()
        try:
            (watch,) = feature.jobs
            await watch.tick(world.clock())  # the scheduled sweep makes the run a unit
            for _ in range(200):  # the worker's loop polls every POLL seconds
                if "this one watched 0" not in feature.status()[-1]:
                    break
                await asyncio.sleep(0.1)
            return [r.key for r in world.rows()]
        finally:
            await feature.stop()

    assert asyncio.run(scenario()) == [live_key(run.id)]
    run.close()


@pytest.mark.slow
def test_two_python_bot_workers_say_each_runs_news_once(pg_url, tmp_path):
    env = clean_env(DATABASE_URL=pg_url)
    subprocess.run([sys.executable, str(ROOT / "bot.py"), "migrate"], env=env, check=True)
    engine = db.make_engine(pg_url)

    def keys() -> list[str]:
        with engine.connect() as conn:
            return list(conn.scalars(sa.select(tg_store.outbox.c.key)))

    def wait_for(wanted: set[str], workers) -> None:
        deadline = time.monotonic() + 60
        while not wanted <= set(keys()):
            assert time.monotonic() < deadline, "\n".join(w.output for w in workers)
            time.sleep(0.2)

    with WorkerProcess(env, tmp_path) as one, WorkerProcess(env, tmp_path) as two:
        one.wait_ready()
        two.wait_ready()
        runs = [Run(f"p{i}", {}, database_url=pg_url) for i in range(4)]
        for run in runs:
            run.log(step=1, loss=1.0)
            run.flush()
        wait_for({live_key(run.id) for run in runs}, (one, two))
        for run in runs:
            run.close()
        wait_for({f"training:{run.id}:end" for run in runs}, (one, two))
        one.terminate()
        two.terminate()
        output = one.output + "\n" + two.output
    assert "Traceback" not in output
    said = Counter(keys())
    engine.dispose()
    for run in runs:
        assert said[live_key(run.id)] == 1 and said[f"training:{run.id}:end"] == 1
