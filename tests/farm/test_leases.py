"""Work units on Postgres: N workers share them with SKIP LOCKED, and a dead worker's units move
to the others within one lease, none done twice. On SQLite: the same calls, one worker."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from steward import db
from steward.farm import leases
from steward.farm.store import work_units
from tests.worker_process import ROOT, clean_env

LEASE = dt.timedelta(seconds=30)


def _units(engine, count: int, now: dt.datetime, kind: str = "test") -> None:
    with engine.begin() as conn:
        for i in range(count):
            leases.ensure(conn, kind, f"u{i:03d}", now)


def test_claims_are_disjoint_and_only_due_unleased_units_are_claimed(engine):
    now = db.utcnow()
    _units(engine, 6, now)
    with engine.begin() as conn:
        leases.ensure(conn, "test", "later", now + LEASE)
    first = leases.claim(engine, "w1", now=now, lease=LEASE, limit=4)
    second = leases.claim(engine, "w2", now=now, lease=LEASE, limit=4)
    assert len(first) == 4 and len(second) == 2
    assert not {u.key for u in first} & {u.key for u in second}
    assert leases.claim(engine, "w3", now=now, lease=LEASE, limit=4) == []
    # The lease runs out: the units are anyone's again.
    again = leases.claim(engine, "w3", now=now + LEASE * 2, lease=LEASE, limit=10)
    assert len(again) == 6 + 1  # and "later" is due by then


def test_a_worker_that_lost_its_lease_cannot_finish_the_unit(engine):
    now = db.utcnow()
    _units(engine, 1, now)
    (mine,) = leases.claim(engine, "w1", now=now, lease=LEASE, limit=1)
    (theirs,) = leases.claim(engine, "w2", now=now + LEASE * 2, lease=LEASE, limit=1)
    with engine.begin() as conn:
        assert not leases.finish(conn, mine, next_due=now + LEASE, now=now)
        assert leases.finish(conn, theirs, next_due=now + LEASE, now=now)
    assert leases.extend(engine, [mine], now=now, lease=LEASE) == 0


def test_claiming_skips_rows_another_worker_has_locked_without_waiting(pg_url):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    now = db.utcnow()
    _units(engine, 3, now)
    with engine.connect() as holder:
        holder.begin()
        locked = sa.select(work_units).where(work_units.c.key == "u000").with_for_update()
        holder.execute(locked)
        started = time.monotonic()
        got = leases.claim(engine, "w2", now=now, lease=LEASE, limit=3)
        assert time.monotonic() - started < 2
        assert sorted(u.key for u in got) == ["u001", "u002"]
        holder.rollback()
    engine.dispose()


@pytest.mark.slow
def test_a_killed_workers_units_move_to_the_others_within_one_lease(pg_url):
    lease_s, work_s, count = 3.0, 0.15, 48
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE unit_done (key text, worker text, at timestamptz not null)")
        )
    _units(engine, count, db.utcnow())
    workers = []
    for name in ("w1", "w2", "w3"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.farm.unit_worker", pg_url, name, f"{lease_s}", "0.15"],
            env=clean_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        workers.append(proc)
    try:
        victim = workers[0]
        assert victim.stdout.readline().startswith("claimed"), "w1 never claimed"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # mid-batch: one of its units done, the rest held
            with engine.connect() as conn:
                if conn.scalar(sa.text("SELECT count(*) FROM unit_done WHERE worker = 'w1'")):
                    break
            time.sleep(0.01)
        victim.kill()
        victim.wait()
        killed_at = db.utcnow()
        with engine.connect() as conn:
            held = set(
                conn.scalars(sa.select(work_units.c.key).where(work_units.c.lease_owner == "w1"))
            )
        assert held, "w1 held nothing when killed"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                finished = conn.scalar(sa.text("SELECT count(DISTINCT key) FROM unit_done"))
            if finished == count:
                break
            time.sleep(0.2)
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT key, worker, at FROM unit_done")).all()
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        engine.dispose()
    keys = [r.key for r in rows]
    assert len(keys) == count and len(set(keys)) == count  # all done, none twice
    moved = [r for r in rows if r.key in held]
    assert {r.worker for r in moved} <= {"w2", "w3"}
    # Within one lease of the kill, plus the work itself and a slow machine's polling.
    slack = dt.timedelta(seconds=lease_s + 4 * work_s * 4 + 3)
    assert max(r.at for r in moved) - killed_at < slack
    assert {r.worker for r in rows} == {"w1", "w2", "w3"}
