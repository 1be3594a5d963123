"""Bench: 3,000 notifications to 100 chats through the outbox vs python-telegram-bot's limiter.

Both runs go to the fake Bot API (tests/fakes/telegram_api.py) enforcing Telegram's limits:
1 message per second per chat, 20 per minute per group (sliding window), 30 per second overall.

The theoretical minimum wall time for a load is the largest of what each limit forces:
- a chat with n messages at 1 per second needs (n - 1) seconds;
- a group with n messages at 20 per minute needs floor((n - 1) / 20) minutes, since the 21st
  message may only go 60 s after the 1st;
- N messages at 30 per second need floor((N - 1) / 30) seconds.
The load (80 private chats x 30, 20 groups x 30 = 3,000) is bound by the global limit: 99.97 s.
Groups get 30 messages each so that the whole bench stays under about four minutes.

Run: .venv/bin/python -m bench.flood
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import telegram
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from steward import db
from steward.telegram import store
from steward.telegram.flood import FloodLimits
from steward.telegram.outbox import Outbox
from steward.telegram.sender import OutboxSender
from steward.telegram.sinks import TelegramSink
from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:BENCH-token"
PRIVATE, GROUPS, PER_PRIVATE, PER_GROUP = 80, 20, 30, 30


def load() -> list[tuple[int, str]]:
    chats = [(1000 + n, PER_PRIVATE) for n in range(PRIVATE)]
    chats += [(-1000 - n, PER_GROUP) for n in range(GROUPS)]
    # Interleaved, as notifications from several jobs would arrive.
    out = []
    for i in range(max(PER_PRIVATE, PER_GROUP)):
        out += [(chat, f"{chat} #{i}") for chat, count in chats if i < count]
    return out


def theoretical_minimum(messages: list[tuple[int, str]]) -> tuple[float, str]:
    per_chat: dict[int, int] = {}
    for chat, _ in messages:
        per_chat[chat] = per_chat.get(chat, 0) + 1
    bounds = {
        "1/s per chat": max(n - 1 for n in per_chat.values()),
        "20/min per group": max(
            (math.floor((n - 1) / 20) * 60 for c, n in per_chat.items() if c < 0), default=0
        ),
        "30/s overall": math.floor((len(messages) - 1) / 30),
    }
    name = max(bounds, key=bounds.get)
    return float(bounds[name]), name


def start_fake() -> tuple[FakeTelegram, str]:
    fake = FakeTelegram(
        token=TOKEN,
        reply_delay=0.0,
        enforce_limits=True,
        per_chat_interval=1.0,
        group_per_minute=20,
        global_per_second=30,
    )
    url = fake.start()
    for n in range(GROUPS):
        fake.add_chat(-1000 - n, type="group")
    return fake, url


def make_bot(url: str, kind: type[telegram.Bot] = telegram.Bot, **kwargs) -> telegram.Bot:
    request = HTTPXRequest(connection_pool_size=512, pool_timeout=600, read_timeout=30)
    return kind(
        TOKEN, base_url=f"{url}/bot", base_file_url=f"{url}/file/bot", request=request, **kwargs
    )


def count_429(fake: FakeTelegram) -> int:
    return sum(1 for c in fake.calls if c.get("status") == 429)


async def run_outbox(messages) -> tuple[float, int, int]:
    fake, url = start_fake()
    with tempfile.TemporaryDirectory() as tmp:
        engine = db.make_engine(f"sqlite:///{tmp}/bench.sqlite")
        db.metadata.create_all(
            engine,
            tables=[store.outbox, store.outbox_lease, store.outbox_mutes, store.outbox_chat_moves],
        )
        outbox = Outbox(engine, None)
        async with make_bot(url) as bot:
            sender = OutboxSender(engine, TelegramSink(bot), FloodLimits(), outbox=outbox)
            started = time.monotonic()
            await sender.start()
            for chat, text in messages:
                await outbox.anotify(text, chat_id=chat)
            await sender.flush(timeout=600)
            wall = time.monotonic() - started
            await sender.stop()
        engine.dispose()
    delivered = len(fake.sent)
    fake.stop()
    return wall, count_429(fake), delivered


async def run_ptb_limiter(messages) -> tuple[float, int, int]:
    fake, url = start_fake()
    async with make_bot(url, ExtBot, rate_limiter=AIORateLimiter()) as bot:
        started = time.monotonic()
        results = await asyncio.gather(
            *(bot.send_message(chat, text) for chat, text in messages), return_exceptions=True
        )
        wall = time.monotonic() - started
    delivered = sum(1 for r in results if not isinstance(r, BaseException))
    fake.stop()
    return wall, count_429(fake), delivered


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    # The limiter logs a traceback for every 429 it lets through; the table counts them.
    logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)
    messages = load()
    minimum, bound = theoretical_minimum(messages)
    print(
        f"load: {len(messages)} messages to {PRIVATE} private chats x {PER_PRIVATE} and "
        f"{GROUPS} groups x {PER_GROUP}"
    )
    print(f"theoretical minimum: {minimum:.1f} s (set by the {bound} limit)")
    rows = [("steward outbox", *await run_outbox(messages))]
    print(f"steward outbox done in {rows[0][1]:.1f} s", flush=True)
    rows.append(("PTB AIORateLimiter", *await run_ptb_limiter(messages)))
    print()
    print(f"{'sender':<20} {'wall s':>8} {'x minimum':>10} {'429s':>6} {'delivered':>10}")
    for name, wall, n429, delivered in rows:
        print(
            f"{name:<20} {wall:8.1f} {wall / minimum:10.2f} {n429:6d} "
            f"{delivered:>5d}/{len(messages)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
