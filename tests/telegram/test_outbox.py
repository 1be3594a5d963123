"""The outbox's write side: idempotent keys, thread safety, mutes and what survives a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from steward import db
from steward.telegram import store
from steward.telegram.outbox import MUTED_PREFIX, Outbox
from tests.clock import Clock

TABLES = [store.outbox, store.outbox_lease, store.outbox_mutes, store.outbox_chat_moves]
T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(store_url):
    """The outbox tables on SQLite, and on Postgres when TEST_DATABASE_URL is set."""
    eng = db.make_engine(store_url)
    db.metadata.create_all(eng, tables=TABLES)
    yield eng
    eng.dispose()


def rows(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(store.outbox).order_by(store.outbox.c.id)).all()


def test_it_stores_a_keyed_notification_once_and_returns_the_same_id(engine):
    outbox = Outbox(engine, "42")
    first = outbox.notify("hello", key="k1")
    assert outbox.notify("hello again", key="k1") == first
    # A new Outbox on the same store (a restart) still knows the key.
    assert Outbox(engine, "42").notify("third", key="k1") == first
    assert [(r.key, r.text, r.state) for r in rows(engine)] == [("k1", "hello", "pending")]


def test_it_stores_one_row_when_threads_race_on_one_key(engine):
    outbox = Outbox(engine, "42")
    ids: list[int] = []
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        ids.append(outbox.notify(f"from {n}", key="race"))
        ids.append(outbox.notify(f"own {n}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rows(engine)) == 9
    assert len({i for i in ids}) == 9


def test_it_sends_to_the_default_chat_unless_told_and_wakes_its_listeners(engine):
    outbox = Outbox(engine, -100123)
    woken = []

    async def scenario():
        outbox.subscribe(asyncio.get_running_loop(), lambda: woken.append(1))
        await outbox.anotify("to the default")
        await outbox.anotify("elsewhere", chat_id=7)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert [r.chat_id for r in rows(engine)] == ["-100123", "7"]
    assert len(woken) == 2


def test_it_refuses_a_notification_with_nothing_to_send(engine):
    outbox = Outbox(engine, "42")
    with pytest.raises(ValueError, match="needs a text"):
        outbox.notify()
    with pytest.raises(ValueError, match="photo or a document"):
        outbox.notify(photo=b"x", document=("a.txt", b"y"))


def test_it_holds_non_urgent_notifications_while_muted_and_lets_urgent_ones_through(engine):
    clock = Clock(T0)
    outbox = Outbox(engine, "42", clock=clock)
    outbox.notify("progress", key="p")
    outbox.mute(42, T0 + dt.timedelta(hours=2))
    assert outbox.muted_until("42") == T0 + dt.timedelta(hours=2)
    outbox.notify("routine <b>one</b>")
    outbox.notify("disk full", urgent=True)
    outbox.notify(photo=b"png", caption="chart", urgent=True)
    outbox.notify("progress 2", edit="p")  # edits make no sound: not held
    outbox.notify("other chat", chat_id=43)
    got = [(r.chat_id, r.state, r.text, r.caption) for r in rows(engine)][1:]
    assert got == [
        ("42", "held", "routine <b>one</b>", None),
        ("42", "pending", MUTED_PREFIX + "disk full", None),
        ("42", "pending", None, MUTED_PREFIX + "chart"),
        ("42", "pending", "progress 2", None),
        ("43", "pending", "other chat", None),
    ]
    assert outbox.pending_count() == 5


def test_it_sums_up_held_notifications_in_one_message_at_unmute(engine):
    clock = Clock(T0)
    outbox = Outbox(engine, "42", clock=clock)
    outbox.mute("42", T0 + dt.timedelta(hours=1))
    for n in range(7):
        outbox.notify(f"event {n} &lt;x&gt;")
    # The mute is in the store: a restarted worker still holds.
    restarted = Outbox(engine, "42", clock=clock)
    restarted.notify("event 7")
    assert restarted.unmute(42) == 8
    assert restarted.muted_until(42) is None
    summary = rows(engine)[-1]
    assert summary.state == "pending"
    assert summary.text.splitlines() == [
        "While muted: 8 notifications were held.",
        "The last 5:",
        "• event 3 &lt;x&gt;",
        "• event 4 &lt;x&gt;",
        "• event 5 &lt;x&gt;",
        "• event 6 &lt;x&gt;",
        "• event 7",
    ]
    assert restarted.stats() == {
        "pending": 1,
        "held": 0,
        "sending": 0,
        "sent": 0,
        "failed": 0,
        "skipped": 8,
    }
    assert restarted.unmute(42) == 0
    restarted.notify("after")
    assert rows(engine)[-1].state == "pending"


def test_it_reports_expired_mutes_and_stops_holding_after_them(engine):
    clock = Clock(T0)
    outbox = Outbox(engine, "42", clock=clock)
    outbox.mute("42", T0 + dt.timedelta(minutes=5))
    assert outbox.expired_mutes() == []
    clock.now += dt.timedelta(minutes=6)
    assert outbox.muted_until("42") is None
    assert outbox.expired_mutes() == ["42"]
    outbox.notify("after the mute ran out")
    assert rows(engine)[-1].state == "pending"


def test_the_migration_creates_the_tables_the_store_declares(sqlite_url):
    migrated, declared = db.make_engine(sqlite_url), db.make_engine("sqlite://")
    db.upgrade(migrated, "0002_telegram")
    db.metadata.create_all(declared, tables=TABLES)

    def shape(engine) -> dict:
        inspector = sa.inspect(engine)
        return {
            t.name: (
                [
                    (c["name"], type(c["type"]).__name__, c["nullable"])
                    for c in inspector.get_columns(t.name)
                ],
                inspector.get_pk_constraint(t.name)["constrained_columns"],
                sorted(
                    (i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(t.name)
                ),
                sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(t.name)),
            )
            for t in TABLES
        }

    assert shape(migrated) == shape(declared)
    migrated.dispose()
    declared.dispose()
