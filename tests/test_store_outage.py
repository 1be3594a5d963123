"""A store outage (a managed Postgres failover) is ridden out by `python bot.py`: the ticks
resume by themselves soon after, nothing is repeated, and each failure is one log line. The
owner hears of an outage longer than STORE_OUTAGE_GRACE once, in the chat, and of its end once;
of a shorter one, nothing."""

from __future__ import annotations

import contextlib
import time

import pytest
import sqlalchemy as sa

from steward import db
from tests.fakes.telegram_api import FakeTelegram
from tests.tcp_proxy import CuttableProxy
from tests.telegram.test_bot_e2e import OWNER, TOKEN, bot_env
from tests.worker_process import WorkerProcess

OUTAGE = 15.0
GRACE = 6  # STORE_OUTAGE_GRACE for these tests: well under OUTAGE, well over a blip
BLIP = 2.0


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@contextlib.contextmanager
def proxied_store(pg_url):
    """A migrated Postgres behind a proxy that can cut the line: (engine, proxy, proxied URL)."""
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    url = db.normalize_url(pg_url)
    proxy = CuttableProxy((url.host, url.port or 5432)).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield engine, proxy, proxied
    finally:
        proxy.stop()
        engine.dispose()


def worker_env(fake, tmp_path, proxied: str) -> dict[str, str]:
    return bot_env(
        fake, tmp_path, DATABASE_URL=proxied, STORE_OUTAGE_GRACE=str(GRACE), DYNO="worker.1"
    )


def outage_messages(fake) -> list[str]:
    return [m["text"] for m in fake.messages(OWNER) if "cannot reach its store" in m["text"]]


def back_messages(fake) -> list[str]:
    return [m["text"] for m in fake.messages(OWNER) if "store is back" in m["text"]]


def latest_claim(engine) -> tuple:
    c = db.job_claims.c
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(c.claimed_at), sa.func.count())).one()


def test_the_worker_rides_out_a_cut_store_and_resumes_within_30_seconds(pg_url, fake, tmp_path):
    with (
        proxied_store(pg_url) as (engine, proxy, proxied),
        WorkerProcess(worker_env(fake, tmp_path, proxied), tmp_path) as worker,
    ):
        worker.wait_ready(60)
        # The watchdog and the dialog sweep tick every 15 s: wait for a tick to be claimed.
        deadline = time.monotonic() + 40
        while latest_claim(engine)[1] < 3:
            assert time.monotonic() < deadline, worker.output
            time.sleep(0.2)
        proxy.cut(OUTAGE).join()
        # The owner was told once, straight through the bot, during the outage.
        assert len(outage_messages(fake)) == 1, worker.output
        back = db.utcnow()
        deadline = time.monotonic() + 30
        while (latest_claim(engine)[0] or back) <= back:
            assert time.monotonic() < deadline, "no tick within 30 s after the outage\n" + (
                worker.output
            )
            time.sleep(0.2)
        assert worker.proc.poll() is None, "the worker died of the outage"
        # ... and of its end once, through the outbox.
        assert fake.wait_for(back_messages, timeout=15), worker.output
        time.sleep(2)
        status, _took = worker.terminate()
    assert status == 0
    ours = [line for line in worker.lines if "steward.scheduler" in line or "tick " in line]
    assert any("trying again" in line for line in ours), worker.output
    [outage] = outage_messages(fake)
    assert "worker.1" in outage and "since" in outage, outage
    assert len(back_messages(fake)) == 1, fake.messages(OWNER)
    lines = worker.output.splitlines()
    scheduler_tracebacks = [
        i
        for i, line in enumerate(lines)
        if "Traceback" in line and "scheduler" in "".join(lines[i : i + 40])
    ]
    assert scheduler_tracebacks == [], worker.output


def test_the_owner_hears_nothing_of_a_blip_shorter_than_the_grace(pg_url, fake, tmp_path):
    with (
        proxied_store(pg_url) as (_engine, proxy, proxied),
        WorkerProcess(worker_env(fake, tmp_path, proxied), tmp_path) as worker,
    ):
        worker.wait_ready(60)
        time.sleep(1)
        for _ in range(2):  # two blips in a row: each one is over before the grace
            proxy.cut(BLIP).join()
            time.sleep(GRACE)
        assert worker.proc.poll() is None, worker.output
        assert worker.terminate()[0] == 0
    assert any("store failed" in line for line in worker.lines), worker.output
    assert outage_messages(fake) == [] and back_messages(fake) == [], fake.messages(OWNER)
