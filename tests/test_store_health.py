"""The owner hears of a store outage once, in the chat: straight through the bot after the
grace, and "back" through the outbox when the store answers (a real Bot against the fake API)."""

from __future__ import annotations

import asyncio
import logging

import pytest
import sqlalchemy as sa

from steward import db
from steward.logs import RedactingFormatter
from steward.store_health import StoreHealth
from steward.telegram import store
from steward.telegram.outbox import Outbox
from tests.fakes.telegram_api import FakeTelegram
from tests.telegram.test_sender import TABLES, TOKEN, make_bot

OWNER = "42"
PASSWORD = "s3cret-pass"
REASON = f'OperationalError: connection to "postgres://steward:{PASSWORD}@db:5432/x" refused'
GRACE, RETRY = 0.3, 0.4


@pytest.fixture(autouse=True)
def timedelta_retry_after(monkeypatch):
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@pytest.fixture
def outbox(sqlite_url):
    engine = db.make_engine(sqlite_url)
    db.metadata.create_all(engine, tables=TABLES)
    yield Outbox(engine, OWNER)
    engine.dispose()


def told(fake) -> list[str]:
    return [m["text"] for m in fake.messages() if m["method"] == "sendMessage"]


def queued(outbox) -> list[str]:
    with outbox.engine.connect() as conn:
        return list(conn.scalars(sa.select(store.outbox.c.text)))


async def watching(fake, outbox, body, **options) -> StoreHealth:
    async with make_bot(fake.url) as bot:
        health = StoreHealth(
            "worker.1",
            grace=GRACE,
            retry=RETRY,
            redact=RedactingFormatter([PASSWORD]).redact,
            **options,
        )
        health.attach(bot, [OWNER], outbox)
        try:
            await body(health)
        finally:
            await health.aclose()
    return health


async def failing_for(health: StoreHealth, seconds: float, reason: str = REASON) -> None:
    """The store fails every call for `seconds` (reports come about ten times a second)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        health.failed(reason)
        await asyncio.sleep(0.05)


async def test_a_blip_shorter_than_the_grace_says_nothing(fake, outbox):
    async def body(health):
        for _ in range(3):
            await failing_for(health, GRACE / 2)
            health.answered()
        await asyncio.sleep(GRACE * 2)

    await watching(fake, outbox, body)
    assert told(fake) == [] and queued(outbox) == []


async def test_an_outage_is_told_once_directly_and_its_end_once_through_the_outbox(fake, outbox):
    async def body(health):
        await failing_for(health, GRACE + 4 * RETRY)
        assert not queued(outbox)  # the outbox is the thing that is down
        health.answered()
        await asyncio.sleep(0.2)
        health.answered()  # more answers change nothing
        await asyncio.sleep(0.2)

    await watching(fake, outbox, body)
    [message] = told(fake)
    assert "worker.1" in message and "since" in message and "OperationalError" in message
    assert PASSWORD not in message and "***" in message
    [back] = queued(outbox)
    assert "worker.1" in back and "store is back after 1 min" in back


async def test_a_failed_direct_send_is_retried_at_most_once_per_retry(fake, outbox, caplog):
    fake.fail_next("sendMessage", 502, count=2)

    async def body(health):
        await failing_for(health, GRACE + 3 * RETRY)
        health.answered()
        await asyncio.sleep(0.2)

    with caplog.at_level(logging.WARNING, "steward.store"):
        await watching(fake, outbox, body)
    attempts = [c for c in fake.calls if c["method"] == "sendMessage"]
    assert len(attempts) == 3  # at GRACE, GRACE + RETRY, GRACE + 2 RETRY: then it went out
    assert len(told(fake)) == 1 and len(queued(outbox)) == 1
    assert sum("cannot tell chat 42 directly" in r.message for r in caplog.records) == 2
    assert not any(r.exc_info for r in caplog.records)


async def test_no_back_message_when_the_outage_message_never_went_out(fake, outbox):
    fake.fail_next("sendMessage", 400, description="Bad Request: chat not found", count=100)

    async def body(health):
        await failing_for(health, GRACE + RETRY / 2)
        health.answered()
        await asyncio.sleep(0.2)

    await watching(fake, outbox, body)
    assert told(fake) == [] and queued(outbox) == []


async def test_a_second_outage_is_told_again(fake, outbox):
    async def body(health):
        for _ in range(2):
            await failing_for(health, GRACE + 0.2)
            health.answered()
            await asyncio.sleep(0.2)

    await watching(fake, outbox, body)
    assert len(told(fake)) == 2 and len(queued(outbox)) == 2
