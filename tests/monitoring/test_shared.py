"""N workers on Postgres split the checks, configured and added with /watch: each claims its
share, each check is sampled once per interval (real checks against a loopback server, a real
Postgres store)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from steward import db
from steward.config import load_settings
from steward.farm import leases
from steward.farm.store import work_units
from steward.features import Services
from steward.monitoring import store
from steward.monitoring.job import build_feature
from steward.monitoring.monitor import Monitor
from steward.monitoring.shared import (
    BATCH,
    KIND,
    LEASE,
    REFRESH,
    WATCHED,
    SharedChecks,
    unit_key,
)
from steward.monitoring.spec import load_checks
from steward.telegram.outbox import Outbox
from tests.clock import Clock
from tests.monitoring.targets import T0, Route
from tests.worker_process import ROOT, WorkerProcess, clean_env

NAMES = [f"c{i}" for i in range(6)]


def worker(engine, settings, clock) -> SharedChecks:
    """One worker's monitor and its share of the checks (each worker has its own outbox)."""
    outbox = Outbox(engine, "1001", clock=clock)
    services = Services(settings=settings, engine=engine, outbox=outbox, clock=clock)
    specs = load_checks(settings.checks)
    return SharedChecks(Monitor(services, specs), specs, batch=2)


def samples_per_check(engine) -> Counter:
    with engine.connect() as conn:
        return Counter(conn.scalars(sa.select(store.samples.c.check)))


async def both_until_done(one: SharedChecks, two: SharedChecks) -> None:
    while sum(await asyncio.gather(one.run_due(), two.run_due())):
        pass


def watch(shared: SharedChecks, name: str, server, interval: int = 60) -> None:
    """What /watch does once its dialog is answered: the worker's monitor adds the check."""
    options = {"name": name, "kind": "http", "url": server.url("/api"), "interval": interval}
    assert shared.monitor.add_watched(options, "1001", 42) is None


def watched_units(engine) -> list[str]:
    u = work_units.c
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.select(u.key).where(u.kind == WATCHED)))


def watching_settings():
    # The targets are on loopback: /watch refuses private addresses unless allowed.
    return load_settings({"CHECK_INTERVAL": "60", "CHECKS_ALLOW_PRIVATE": "true"}, env_file=None)


def two_watching_workers(pg_url) -> tuple:
    """(engine, clock, a, b): two workers on one migrated store, started (units ensured)."""
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    clock = Clock(T0)
    a, b = worker(engine, watching_settings(), clock), worker(engine, watching_settings(), clock)
    a.ensure()
    b.ensure()
    return engine, clock, a, b


async def stopped(*workers: SharedChecks) -> None:
    for shared in workers:
        await shared.monitor.stop()


async def three_intervals(engine, clock, one: SharedChecks, two: SharedChecks) -> None:
    """Both workers run what is due, three intervals long: each check is sampled once in each
    (and nothing is due half an interval on), then both stop."""
    try:
        for n in (1, 2, 3):
            await both_until_done(one, two)
            assert samples_per_check(engine) == Counter({name: n for name in NAMES})
            clock.advance(seconds=30)
            await both_until_done(one, two)  # half an interval on: nothing is due
            clock.advance(seconds=30)
    finally:
        await stopped(one, two)


def test_two_workers_split_the_checks_and_sample_each_once_per_interval(pg_url, server):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    checks = "; ".join(f"{n}={server.url('/api')}" for n in NAMES)
    settings = load_settings({"CHECKS": checks, "CHECK_INTERVAL": "60"}, env_file=None)
    clock = Clock(T0)
    one, two = worker(engine, settings, clock), worker(engine, settings, clock)
    one.ensure()
    two.ensure()  # the second worker's start changes nothing: the units exist

    asyncio.run(three_intervals(engine, clock, one, two))
    assert samples_per_check(engine) == Counter({name: 3 for name in NAMES})
    assert one.done > 0 and two.done > 0 and one.done + two.done == 3 * len(NAMES)
    engine.dispose()


def test_a_dead_workers_checks_go_to_the_other_once_its_lease_runs_out(pg_url, server):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    checks = "; ".join(f"{n}={server.url('/api')}" for n in NAMES[:2])
    settings = load_settings({"CHECKS": checks}, env_file=None)
    clock = Clock(T0)
    dead, alive = worker(engine, settings, clock), worker(engine, settings, clock)
    dead.ensure()
    taken = leases.claim(
        engine, dead.owner, now=clock(), lease=LEASE, limit=2, kinds=[KIND]
    )  # it claimed both checks, then died before sampling them
    assert len(taken) == 2

    async def run() -> tuple[int, int]:
        try:
            first = await alive.run_due()
            clock.advance(seconds=LEASE.total_seconds() + 1)
            return first, await alive.run_due()
        finally:
            await alive.monitor.stop()
            await dead.monitor.stop()

    assert asyncio.run(run()) == (0, 2)
    assert samples_per_check(engine) == Counter({"c0": 1, "c1": 1})
    engine.dispose()


def test_two_workers_split_the_watched_checks_and_sample_each_once_per_interval(pg_url, server):
    engine, clock, one, two = two_watching_workers(pg_url)
    for name in NAMES:
        watch(one, name, server)

    asyncio.run(three_intervals(engine, clock, one, two))
    assert samples_per_check(engine) == Counter({name: 3 for name in NAMES})
    assert one.done > 0 and two.done > 0 and one.done + two.done == 3 * len(NAMES)
    engine.dispose()


def test_a_check_watched_on_one_worker_is_sampled_by_another(pg_url, server):
    engine, clock, a, b = two_watching_workers(pg_url)
    watch(a, "web", server)
    clock.advance(seconds=REFRESH.total_seconds())  # B reads the watched checks again

    async def run() -> tuple[int, int]:
        try:
            return await b.run_due(), await a.run_due()
        finally:
            await stopped(a, b)

    assert asyncio.run(run()) == (1, 0)
    assert samples_per_check(engine) == Counter({"web": 1})
    engine.dispose()


def test_unwatch_stops_a_check_on_every_worker(pg_url, server):
    engine, clock, a, b = two_watching_workers(pg_url)
    watch(a, "web", server)
    watch(a, "api", server)
    clock.advance(seconds=REFRESH.total_seconds())

    async def run() -> None:
        try:
            await both_until_done(a, b)
            assert samples_per_check(engine) == Counter({"web": 1, "api": 1})
            assert await asyncio.to_thread(a.monitor.remove_watched, "web")
            for _ in range(3):  # intervals later, on both workers, after they read them again
                clock.advance(seconds=60)
                await both_until_done(a, b)
        finally:
            await stopped(a, b)

    asyncio.run(run())
    assert samples_per_check(engine) == Counter({"api": 4})  # web's were forgotten with it
    assert [key.split(":")[0] for key in watched_units(engine)] == ["api"]
    engine.dispose()


def test_a_deployed_store_gets_units_for_its_watched_checks_and_loses_stale_ones(pg_url, server):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    clock = Clock(T0)
    # Added before watched checks were units: rows without units, and a unit of a check gone.
    store.add_watched(engine, "web", "http", {"url": server.url("/api")}, None, None, T0)
    with engine.begin() as conn:
        leases.ensure(conn, WATCHED, "gone:0123456789", T0)
    one = worker(engine, watching_settings(), clock)
    one.ensure()  # what the worker's start does
    [key] = watched_units(engine)
    assert key == unit_key(one.monitor.watched["web"])

    async def run() -> int:
        try:
            return await one.run_due()
        finally:
            await stopped(one)

    assert asyncio.run(run()) == 1
    assert samples_per_check(engine) == Counter({"web": 1})
    engine.dispose()


def test_on_postgres_no_scheduler_job_runs_the_watched_checks(pg_url):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    clock = Clock(T0)
    settings = watching_settings()
    services = Services(
        settings=settings, engine=engine, outbox=Outbox(engine, "1001", clock=clock), clock=clock
    )
    assert [job.name for job in build_feature(services).jobs] == ["monitoring.housekeeping"]
    engine.dispose()


def test_a_worker_samples_batches_side_by_side_so_slow_targets_do_not_queue(pg_url, server):
    server.routes["/slow"] = Route(200, b"ok", delay=1.5)
    names = [f"s{i}" for i in range(4 * BATCH)]
    checks = "; ".join(f"{n}={server.url('/slow')}" for n in names)
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    settings = load_settings({"CHECKS": checks, "CHECK_INTERVAL": "60"}, env_file=None)
    outbox = Outbox(engine, "1001", clock=Clock(T0))
    services = Services(settings=settings, engine=engine, outbox=outbox, clock=Clock(T0))
    specs = load_checks(settings.checks)
    shared = SharedChecks(Monitor(services, specs), specs)

    async def run() -> float:
        began = time.monotonic()
        await shared.start()
        try:
            while sum(samples_per_check(engine).values()) < len(names):
                assert time.monotonic() - began < 20
                await asyncio.sleep(0.1)
            return time.monotonic() - began
        finally:
            await shared.stop()
            await shared.monitor.stop()

    took = asyncio.run(run())
    # Four batches one after another would take four answers' time (6 s): side by side, one.
    assert took < 4.0, f"{len(names)} slow checks took {took:.1f} s"
    assert samples_per_check(engine) == Counter({name: 1 for name in names})
    engine.dispose()


def test_on_sqlite_the_scheduler_runs_the_checks_as_before(sqlite_url, server):
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine)
    settings = load_settings({"CHECKS": f"api={server.url('/api')}"}, env_file=None)
    clock = Clock(T0)
    services = Services(
        settings=settings, engine=engine, outbox=Outbox(engine, "1001", clock=clock), clock=clock
    )
    names = [job.name for job in build_feature(services).jobs]
    assert any(name.startswith("monitoring.every_") for name in names)
    assert "monitoring.watched" in names
    engine.dispose()


def test_on_postgres_no_scheduler_job_runs_the_configured_checks(pg_url, server):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    settings = load_settings({"CHECKS": f"api={server.url('/api')}"}, env_file=None)
    clock = Clock(T0)
    services = Services(
        settings=settings, engine=engine, outbox=Outbox(engine, "1001", clock=clock), clock=clock
    )
    names = [job.name for job in build_feature(services).jobs]
    assert not any(name.startswith("monitoring.every_") for name in names)
    engine.dispose()


@pytest.mark.slow
def test_two_python_bot_workers_sample_each_check_once_per_interval(pg_url, server, tmp_path):
    names = [f"w{i}" for i in range(12)]
    checks = "; ".join(f"{n}={server.url('/api')}" for n in names)
    env = clean_env(DATABASE_URL=pg_url, CHECKS=checks, CHECK_INTERVAL="5")
    subprocess.run([sys.executable, str(ROOT / "bot.py"), "migrate"], env=env, check=True)
    engine = db.make_engine(pg_url)
    with WorkerProcess(env, tmp_path) as one, WorkerProcess(env, tmp_path) as two:
        one.wait_ready()
        two.wait_ready()
        deadline = time.monotonic() + 60
        while min(samples_per_check(engine)[n] for n in names) < 3:
            assert time.monotonic() < deadline, one.output + "\n" + two.output
            time.sleep(0.2)
        one.terminate()
        two.terminate()
        output = one.output + "\n" + two.output
    assert "Traceback" not in output
    with engine.connect() as conn:
        rows = conn.execute(sa.select(store.samples.c.check, store.samples.c.time)).all()
    engine.dispose()
    times: dict[str, list] = {}
    for check, when in rows:
        times.setdefault(check, []).append(when)
    for check, seen in times.items():
        seen.sort()
        gaps = [(b - a).total_seconds() for a, b in zip(seen, seen[1:], strict=False)]
        assert all(gap > 3.5 for gap in gaps), f"{check} sampled twice in an interval: {gaps}"
