"""The sender against the fake Bot API: exactly once, in order per chat, within the limits."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import telegram
from telegram.request import HTTPXRequest

from steward import db
from steward.telegram import store
from steward.telegram.flood import FloodLimits
from steward.telegram.formatting import esc
from steward.telegram.outbox import MUTED_PREFIX, Outbox
from steward.telegram.sender import OutboxSender
from steward.telegram.sinks import TelegramSink
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:TEST-token"
TABLES = [store.outbox, store.outbox_lease, store.outbox_mutes, store.outbox_chat_moves]
# Limits for tests about behaviour rather than pace: the fake is told the same.
RELAXED = FloodLimits(per_chat_per_second=100, group_per_minute=100_000, global_per_second=1000)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch):
    """PTB 22 warns on each RetryAfter unless opted in to timedelta values (the sink takes both)."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def engine(store_url):
    eng = db.make_engine(store_url)
    db.metadata.create_all(eng, tables=TABLES)
    yield eng
    eng.dispose()


def start_fake(**options) -> FakeTelegram:
    fake = FakeTelegram(token=TOKEN, reply_delay=0.0, **options)
    fake.start()
    return fake


@pytest.fixture
def fake():
    fake = start_fake(
        enforce_limits=True,
        per_chat_interval=0.01,
        group_per_minute=100_000,
        global_per_second=1000,
    )
    yield fake
    fake.stop()


def make_bot(url: str, read_timeout: float = 5.0) -> telegram.Bot:
    request = HTTPXRequest(
        connection_pool_size=256,
        read_timeout=read_timeout,
        connect_timeout=read_timeout,
        pool_timeout=30.0,
    )
    return telegram.Bot(
        TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot", request=request
    )


@contextlib.asynccontextmanager
async def running(engine, fake, limits=RELAXED, outbox=None, read_timeout=5.0, **options):
    async with make_bot(fake.url, read_timeout) as bot:
        sender = OutboxSender(
            engine,
            TelegramSink(bot),
            limits,
            outbox=outbox,
            poll_interval=0.2,
            backoff=(0.02, 0.5),
            seed=1,
            **options,
        )
        await sender.start()
        try:
            yield sender
        finally:
            await sender.stop(timeout=5)


def texts(fake, chat) -> list[str]:
    return [m["text"] for m in fake.sent if str(m["chat_id"]) == str(chat) and m["text"]]


def rows(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(store.outbox).order_by(store.outbox.c.id)).all()


def count_429(fake) -> int:
    return sum(1 for c in fake.calls if c.get("status") == 429)


async def test_it_sends_a_notification_keyed_twice_once(engine, fake):
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        first = await outbox.anotify("deploy <b>done</b>", key="deploy-7")
        assert await outbox.anotify("deploy <b>done</b>", key="deploy-7") == first
        assert await sender.flush(5)
        assert await outbox.anotify("deploy <b>done</b>", key="deploy-7") == first
        assert await sender.flush(5)
    assert texts(fake, 42) == ["deploy done"]
    row = rows(engine)[0]
    assert (row.state, row.message_id) == ("sent", fake.sent[0]["message_id"])


async def test_it_delivers_what_was_queued_before_a_restart_once(engine, store_url, fake):
    before = Outbox(engine, "42")
    for n in range(5):
        before.notify(f"queued {n}", key=f"q{n}")
    engine.dispose()
    # The restarted worker: new engine, outbox and sender; its jobs notify the same keys again.
    again = db.make_engine(store_url)
    outbox = Outbox(again, "42")
    async with running(again, fake, outbox=outbox) as sender:
        for n in range(5):
            await outbox.anotify(f"queued {n}", key=f"q{n}")
        assert await sender.flush(5)
    again.dispose()
    assert texts(fake, 42) == [f"queued {n}" for n in range(5)]


async def test_it_delivers_a_thousand_notifications_exactly_once_in_order_despite_faults(
    engine,
):
    fake = start_fake(
        enforce_limits=True,
        per_chat_interval=0.005,
        group_per_minute=100_000,
        global_per_second=5000,
        fault_hold=0.5,
    )
    fake.set_faults(rate=0.3, kinds=("429", "5xx", "timeout", "drop"), seed=1)
    outbox = Outbox(engine, "42")
    chats = [100 + n for n in range(16)] + [-100 - n for n in range(4)]
    expected = {c: [] for c in chats}
    for n in range(1000):
        chat = chats[n % len(chats)]
        expected[chat].append(f"n{n} &")
        outbox.notify(esc(f"n{n} &"), chat_id=chat)
    try:
        limits = FloodLimits(
            per_chat_per_second=150, group_per_minute=100_000, global_per_second=4000
        )
        async with running(engine, fake, limits, outbox=outbox, read_timeout=0.3) as sender:
            assert await sender.flush(100)
    finally:
        fake.stop()
    for chat in chats:
        assert texts(fake, chat) == expected[chat]
    assert Outbox(engine, None).stats()["sent"] == 1000


async def test_it_waits_out_a_429_retry_after_before_trying_again(engine, fake):
    fake.fail_next("sendMessage", 429, retry_after=2)
    outbox = Outbox(engine, "42")
    started = time.time()
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("after the flood wait")
        assert await sender.flush(6)
    assert texts(fake, 42) == ["after the flood wait"]
    assert fake.sent[0]["time"] - started >= 2.0


async def test_it_retries_server_errors_and_dropped_connections(engine, fake):
    fake.fail_next("sendMessage", 502, count=2)
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("eventually")
        assert await sender.flush(6)
    assert texts(fake, 42) == ["eventually"]
    assert rows(engine)[0].attempts == 3


async def test_it_records_blocked_and_unknown_chats_as_failed_without_retrying(engine, fake):
    fake.add_chat(77, blocked=True)
    fake.add_chat(-999_999, type="group", missing=True)
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("to a blocker", chat_id=77)
        await outbox.anotify("to nobody", chat_id=-999_999)
        await outbox.anotify("to the owner")
        assert await sender.flush(5)
        await asyncio.sleep(0.5)  # would a retry happen, it would have by now
    failed = {r.chat_id: r for r in rows(engine) if r.state == "failed"}
    assert set(failed) == {"77", "-999999"}
    assert "blocked" in failed["77"].reason or "forbidden" in failed["77"].reason
    assert "chat not found" in failed["-999999"].reason.lower()
    assert all(r.attempts == 1 for r in failed.values())
    sends = [c for c in fake.calls if str(c["params"].get("chat_id")) in ("77", "-999999")]
    assert len(sends) == 2
    assert texts(fake, 42) == ["to the owner"]


async def test_it_follows_a_group_that_became_a_supergroup(engine, fake):
    fake.add_chat(-500, type="group", migrate_to=-100500)
    fake.add_chat(-100500, type="supergroup")
    outbox = Outbox(engine, "-500")
    for n in range(3):
        outbox.notify(f"m{n}")
    async with running(engine, fake, outbox=outbox) as sender:
        assert await sender.flush(5)
        await outbox.anotify("after the move")
        assert await sender.flush(5)
    assert texts(fake, -100500) == ["m0", "m1", "m2", "after the move"]
    assert {r.chat_id for r in rows(engine)} == {"-100500"}
    with engine.connect() as conn:
        move = conn.execute(sa.select(store.outbox_chat_moves)).one()
    assert (move.old_chat_id, move.new_chat_id) == ("-500", "-100500")


async def test_it_delivers_html_special_characters_literally(engine, fake):
    raw = "if a < b && c > d: print(\"x\") 'y' &amp;"
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify(f"<b>{esc(raw)}</b>")
        await outbox.anotify(photo=b"\x89PNG", caption=f"<i>{esc(raw)}</i>")
        assert await sender.flush(5)
    assert fake.sent[0]["text"] == raw
    assert fake.sent[1]["caption"] == raw


async def test_it_splits_a_long_text_into_messages_in_order(engine, fake):
    lines = [f"<b>line {n}</b> " + "x" * 90 for n in range(300)]
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("\n".join(lines))
        await outbox.anotify("next")
        assert await sender.flush(5)
    got = texts(fake, 42)
    assert len(got) == 9 and got[-1] == "next"
    assert all(len(t) <= 4096 for t in got)
    # Telegram trims the newline each part ends with.
    assert "\n".join(got[:-1]).split("\n") == [f"line {n} " + "x" * 90 for n in range(300)]


async def test_it_cuts_a_long_caption_and_sends_the_rest_after_the_photo(engine, fake):
    caption = "\n".join(f"row {n:04d}" for n in range(300))
    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify(photo=b"\x89PNG", caption=caption, buttons=[[("Ok", "x:ok")]])
        assert await sender.flush(5)
    photo, rest = fake.sent
    assert photo["method"] == "sendPhoto" and len(photo["caption"]) <= 1024
    assert rest["method"] == "sendMessage" and rest["reply_markup"]
    assert photo["caption"] + "\n" + rest["text"] == caption  # Telegram trims the newline


async def test_it_edits_in_place_sends_only_the_newest_edit_and_tolerates_not_modified(
    engine, fake
):
    outbox = Outbox(engine, "42")
    await outbox.anotify("epoch 1", key="run-1")
    await outbox.anotify("epoch 2", edit="run-1")
    await outbox.anotify("epoch 3", edit="run-1")
    async with running(engine, fake, outbox=outbox) as sender:
        assert await sender.flush(5)
        await outbox.anotify("epoch 3", edit="run-1")  # the same text: "not modified"
        await outbox.anotify("answer", reply_to="run-1")
        assert await sender.flush(5)
    methods = [m["method"] for m in fake.calls if m.get("method") != "getMe"]
    assert methods == ["sendMessage", "editMessageText", "editMessageText", "sendMessage"]
    states = [r.state for r in rows(engine)]
    assert states == ["sent", "skipped", "sent", "sent", "sent"]
    first = rows(engine)[0].message_id
    assert fake.sent[-1]["reply_to_message_id"] == first


async def test_a_burst_to_a_hundred_chats_gets_no_429(engine):
    fake = start_fake(
        enforce_limits=True, per_chat_interval=1.0, group_per_minute=20, global_per_second=30
    )
    outbox = Outbox(engine, None)
    chats = list(range(1, 81)) + [-n for n in range(1, 21)]
    for n in range(3):
        for chat in chats:
            outbox.notify(f"{chat}/{n}", chat_id=chat)
    started = time.monotonic()
    try:
        async with running(engine, fake, FloodLimits(), outbox=outbox) as sender:
            assert await sender.flush(60)
    finally:
        fake.stop()
    assert count_429(fake) == 0
    assert len(fake.sent) == 300
    assert time.monotonic() - started < 20  # 300 at 30/s: about 10 s
    for chat in chats[:3]:
        assert texts(fake, chat) == [f"{chat}/{n}" for n in range(3)]


async def test_two_senders_on_one_store_never_send_a_row_twice(store_url, fake):
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.metadata.create_all(engines[0], tables=TABLES)
    outboxes = [Outbox(e, "42") for e in engines]
    chats = [11, 12, 13, 14]
    for n in range(200):
        outboxes[n % 2].notify(f"m{n}", chat_id=chats[n % 4])
    async with (
        running(engines[0], fake, lease_ttl=1.0, worker_id="a") as a,
        running(engines[1], fake, lease_ttl=1.0, worker_id="b") as b,
    ):
        await asyncio.sleep(0.3)
        await a.stop(timeout=5)  # a deploy: the old worker leaves, the other takes over
        for n in range(200, 240):
            outboxes[0].notify(f"m{n}", chat_id=chats[n % 4])
        assert await b.flush(20)
    sent = [m["text"] for m in fake.sent]
    assert sorted(sent) == sorted(f"m{n}" for n in range(240))
    for chat in chats:
        assert texts(fake, chat) == [f"m{n}" for n in range(240) if chats[n % 4] == chat]
    for e in engines:
        e.dispose()


async def test_a_sender_stalled_past_its_lease_does_not_send_what_the_next_one_sent(
    store_url, fake
):
    # The first sender claims the row, then its threads stall (a starved executor, a store
    # that hangs for it) longer than its lease: the second takes over, puts the row back to
    # pending and sends it. When the first wakes it must not send the row as well.
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.metadata.create_all(engines[0], tables=TABLES)
    stalled = _stall_after(engines[0], "claimed_at", seconds=2.5)
    Outbox(engines[0], "42").notify("deploy done")
    async with running(engines[0], fake, lease_ttl=1.0, worker_id="a") as a:
        assert await asyncio.to_thread(stalled.wait, 10)
        async with running(engines[1], fake, lease_ttl=1.0, worker_id="b") as b:
            assert await asyncio.to_thread(fake.wait_for_sent, 1, None, 10)
            await asyncio.sleep(max(0.0, stalled.until - time.monotonic()))
            assert await a.flush(10)  # the first sender woke and is done with its delivery
            assert await b.flush(10)
    assert texts(fake, 42) == ["deploy done"]
    assert [(r.state, r.claimed_by) for r in rows(engines[1])] == [("sent", "b")]
    for e in engines:
        e.dispose()


async def test_a_sender_stalled_between_two_parts_leaves_the_rest_to_the_next_one(store_url, fake):
    engines = [db.make_engine(store_url) for _ in range(2)]
    db.metadata.create_all(engines[0], tables=TABLES)
    stalled = _stall_after(engines[0], "parts_sent", seconds=2.5)
    lines = [f"line {n} " + "x" * 90 for n in range(60)]  # two messages' worth
    Outbox(engines[0], "42").notify("\n".join(lines))
    async with running(engines[0], fake, lease_ttl=1.0, worker_id="a") as a:
        assert await asyncio.to_thread(stalled.wait, 10)
        async with running(engines[1], fake, lease_ttl=1.0, worker_id="b") as b:
            assert await asyncio.to_thread(fake.wait_for_sent, 2, None, 10)
            await asyncio.sleep(max(0.0, stalled.until - time.monotonic()))
            assert await a.flush(10)
            assert await b.flush(10)
    got = texts(fake, 42)
    assert len(got) == 2 and "\n".join(got).split("\n") == lines
    assert [(r.state, r.claimed_by, r.parts_sent) for r in rows(engines[1])] == [("sent", "b", 1)]
    for e in engines:
        e.dispose()


class _Stall(threading.Event):
    until = float("inf")


def _stall_after(engine, column: str, seconds: float) -> _Stall:
    """After `engine` first changes `column` of an outbox row (and commits), its threads wait
    `seconds`: the one that made the change and every one that uses `engine` meanwhile."""
    stall = _Stall()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def changed(conn, cursor, statement, parameters, context, executemany):
        ours = statement.startswith("UPDATE outbox SET") and column in statement
        if ours and not stall.is_set():
            stall.until = time.monotonic() + seconds
            stall.set()

    def wait(*args) -> None:
        if stall.is_set() and (left := stall.until - time.monotonic()) > 0:
            time.sleep(left)

    sa.event.listen(engine.pool, "checkin", wait)
    sa.event.listen(engine.pool, "checkout", wait)
    return stall


async def test_mute_holds_routine_notifications_and_lets_urgent_ones_through(engine, fake):
    outbox = Outbox(engine, "42")
    outbox.mute(42, db.utcnow() + dt.timedelta(hours=1))
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("routine 1")
        await outbox.anotify("<b>node down</b>", urgent=True)
        await outbox.anotify("routine 2")
        assert await sender.flush(5)
        assert texts(fake, 42) == [MUTED_PREFIX + "node down"]
        assert await asyncio.to_thread(outbox.unmute, 42) == 2
        assert await sender.flush(5)
    assert texts(fake, 42)[1].splitlines() == [
        "While muted: 2 notifications were held.",
        "• routine 1",
        "• routine 2",
    ]


async def test_it_records_a_notification_with_no_chat_as_failed(engine, fake):
    outbox = Outbox(engine, None)
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify("nowhere to go")
        assert await sender.flush(5)
    assert rows(engine)[0].state == "failed"
    assert "TELEGRAM_CHAT_ID" in rows(engine)[0].reason


async def test_a_killed_worker_s_notifications_are_delivered_once_by_the_next(sqlite_url, fake):
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine, tables=TABLES)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.telegram.outbox_child", sqlite_url, "4"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert [r.state for r in rows(engine)] == ["sending", "pending", "pending", "pending"]
    async with running(engine, fake, outbox=Outbox(engine, "42")) as sender:
        await asyncio.sleep(1.2)  # the dead worker's one-second lease runs out
        assert await sender.flush(5)
    assert texts(fake, 42) == [f"child {n}" for n in range(4)]
    engine.dispose()


async def test_a_photo_telegram_refuses_goes_out_as_text(engine, fake):
    import struct
    import zlib

    def png(width: int, height: int) -> bytes:
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        chunk = b"IHDR" + header
        return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + zlib.crc32(chunk).to_bytes(4)

    outbox = Outbox(engine, "42")
    async with running(engine, fake, outbox=outbox) as sender:
        await outbox.anotify(photo=png(800, 9800), caption="🔴 <b>api</b> is down", key="a:1")
        assert await sender.flush(5)
    assert [(m["method"], m["text"]) for m in fake.sent] == [("sendMessage", "🔴 api is down")]
    assert rows(engine)[0].state == "sent"
