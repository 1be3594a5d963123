"""A store outage (a managed Postgres failover) is ridden out by `python bot.py`: the ticks
resume by themselves soon after, nothing is repeated, and each failure is one log line."""

from __future__ import annotations

import time

import sqlalchemy as sa

from steward import db
from tests.tcp_proxy import CuttableProxy
from tests.worker_process import WorkerProcess, clean_env

OUTAGE = 15.0


def latest_claim(engine) -> tuple:
    c = db.job_claims.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(c.claimed_at), sa.func.count())).one()


def test_the_worker_rides_out_a_cut_store_and_resumes_within_30_seconds(pg_url, tmp_path):
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    url = db.normalize_url(pg_url)
    proxy = CuttableProxy((url.host, url.port or 5432)).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        with WorkerProcess(clean_env(DATABASE_URL=proxied), tmp_path) as worker:
            worker.wait_ready(60)
            # The watchdog and the dialog sweep tick every 15 s: wait for a tick to be claimed.
            deadline = time.monotonic() + 40
            while latest_claim(engine)[1] < 3:
                assert time.monotonic() < deadline, worker.output
                time.sleep(0.2)
            proxy.cut(OUTAGE).join()
            back = db.utcnow()
            deadline = time.monotonic() + 30
            while (latest_claim(engine)[0] or back) <= back:
                assert time.monotonic() < deadline, "no tick within 30 s after the outage\n" + (
                    worker.output
                )
                time.sleep(0.2)
            assert worker.proc.poll() is None, "the worker died of the outage"
            status, _took = worker.terminate()
        assert status == 0
        ours = [line for line in worker.lines if "steward.scheduler" in line or "tick " in line]
        assert any("trying again" in line for line in ours), worker.output
    finally:
        proxy.stop()
        engine.dispose()
    lines = worker.output.splitlines()
    scheduler_tracebacks = [
        i
        for i, line in enumerate(lines)
        if "Traceback" in line and "scheduler" in "".join(lines[i : i + 40])
    ]
    assert scheduler_tracebacks == [], worker.output
