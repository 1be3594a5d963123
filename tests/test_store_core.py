"""The store's shared helpers hold under concurrency and failure: upserts race safely, the
sender lease is judged by the database's clock, and a silent server cannot hang a connect."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import threading
import time

import pytest
import sqlalchemy as sa

from steward import db
from steward.telegram import store
from steward.telegram.access import RefusalMemory
from steward.telegram.sender import OutboxSender
from steward.telegram.sinks import LogSink

TABLES = [store.outbox, store.outbox_lease, store.outbox_mutes, store.outbox_chat_moves]


def test_two_writers_upserting_the_first_row_at_once_both_succeed(engine):
    """Update-then-insert raises IntegrityError on Postgres when both find no row to update."""
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(value: int) -> None:
        try:
            with engine.begin() as conn:
                barrier.wait(5)
                db.upsert(conn, db.state, {"key": "cursor"}, value=value, updated_at=db.utcnow())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with engine.connect() as conn:
        rows = conn.execute(sa.select(db.state.c.value).where(db.state.c.key == "cursor")).all()
    assert len(rows) == 1 and rows[0].value in (1, 2)


def test_upsert_changes_only_the_given_columns_of_an_existing_row(engine):
    moment = db.utcnow()
    with engine.begin() as conn:
        db.upsert(conn, db.state, {"key": "k"}, value={"a": 1}, updated_at=moment)
        db.upsert(conn, db.state, {"key": "k"}, value={"a": 2}, updated_at=moment)
        rows = conn.execute(sa.select(db.state)).all()
    assert [(r.key, r.value) for r in rows] == [("k", {"a": 2})]


def test_upsert_gives_inserted_values_to_a_new_row_only(engine):
    # A chat's mute made longer keeps the time it began.
    began, later = db.utcnow(), db.utcnow() + dt.timedelta(hours=1)
    mutes = store.outbox_mutes
    with engine.begin() as conn:
        db.upsert(conn, mutes, {"chat_id": "42"}, {"created_at": began}, until=later)
        db.upsert(conn, mutes, {"chat_id": "42"}, {"created_at": later}, until=later)
        rows = conn.execute(sa.select(mutes)).all()
    assert [(r.chat_id, r.created_at, r.until) for r in rows] == [("42", began, later)]


def test_upsert_leaves_the_row_alone_when_its_condition_is_false(engine):
    forward = db.state.c.updated_at < dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    with engine.begin() as conn:
        for day, value in ((1, "first"), (3, "third"), (2, "second")):
            at = dt.datetime(2026, 1, day, tzinfo=dt.UTC)
            db.upsert(conn, db.state, {"key": "k"}, value=value, updated_at=at, only_if=forward)
        assert conn.scalar(sa.select(db.state.c.value)) == "third"


def test_a_stranger_is_refused_once_an_hour_whichever_worker_asks(engine):
    memory, other = RefusalMemory(engine), RefusalMemory(engine)
    first = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
    assert memory.claim(7, first)
    assert not other.claim(7, first + dt.timedelta(minutes=59))
    assert other.claim(7, first + dt.timedelta(minutes=61))
    assert not memory.claim(7, first + dt.timedelta(minutes=62))
    assert memory.claim(8, first + dt.timedelta(minutes=62))


def test_two_senders_taking_the_first_lease_at_once_get_it_once(engine):
    barrier, won = threading.Barrier(2), []

    def take(holder: str) -> None:
        barrier.wait(5)
        won.append((holder, store.take_lease(engine, holder, 15.0)))

    threads = [threading.Thread(target=take, args=(h,)) for h in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    [(winner, _)] = [w for w in won if w[1]]
    assert len(won) == 2
    assert store.take_lease(engine, winner, 15.0)  # renewed by its holder
    assert not store.take_lease(engine, "c", 15.0)


async def test_the_sender_lease_is_judged_by_the_databases_clock(store_url):
    """A dyno whose clock runs an hour behind must not look like an expired lease holder."""
    engine = db.make_engine(store_url)
    db.metadata.create_all(engine, tables=TABLES)

    def behind() -> dt.datetime:
        return db.utcnow() - dt.timedelta(hours=1)

    def holder() -> str | None:
        with engine.connect() as conn:
            return conn.scalar(sa.select(store.outbox_lease.c.holder))

    slow = OutboxSender(engine, LogSink(), clock=behind, worker_id="a", poll_interval=0.1)
    right = OutboxSender(engine, LogSink(), worker_id="b", poll_interval=0.1)
    await slow.start()
    try:
        deadline = time.monotonic() + 10
        while holder() != "a":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await right.start()
        await asyncio.sleep(1.0)
        assert holder() == "a", "the other worker took a lease that had 15 s to run"
    finally:
        await right.stop(timeout=1)
        await slow.stop(timeout=1)
        engine.dispose()


def test_a_postgres_server_that_never_answers_fails_the_connect_in_time(pg_url):
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(silent.accept()[0]), daemon=True).start()
    engine = db.make_engine(f"postgresql://app@127.0.0.1:{port}/app", connect_timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(sa.exc.OperationalError), engine.connect():
            pass
        assert time.monotonic() - started < 10
    finally:
        engine.dispose()
        for s in held:
            s.close()
        silent.close()
