"""/bots, /bot NAME and /farm, as the chat sees them (through the fake Bot API)."""

from __future__ import annotations

import datetime as dt

import pytest

from steward.farm import bots as farm_bots
from steward.farm import commands, reader
from steward.farm.bots import Bot
from steward.farm.job import Farm
from tests.clock import Clock
from tests.command_calls import command_caller
from tests.fakes.telegram_api import FakeTelegram
from tests.posting.helpers import services

TOKEN = "123456:TEST-token-for-the-farm"
OWNER = 42


@pytest.fixture
async def chat(engine, key):
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, STEWARD_SECRET_KEY=key, TZ="Europe/Berlin"))
    with engine.begin() as conn:
        farm_bots.add(conn, Bot("poet", "%s & <b>", words="rain,snow,sun"), clock())
        farm_bots.add(conn, Bot("newsy", "{word}!", interval_min=30), clock())
        farm_bots.record_error(conn, "newsy", "X said <no>", clock())
        for hour in range(5):
            at = clock() - dt.timedelta(hours=hour)
            reader.sample(conn, "poet", 100 + hour, 10 * hour, at)
            reader.sample(conn, "newsy", 100 + hour, 5, at)
    with FakeTelegram(token=TOKEN, enforce_limits=False) as fake:
        async with command_caller(fake, TOKEN, OWNER, commands.build(farm, farm.services)) as call:
            yield call, farm
    await farm.stop()


async def test_bots_is_a_table_of_every_bot_with_errors_escaped(chat):
    call, farm = chat
    farm.run_due()
    (table,) = await call("/bots")
    lines = table["text"].splitlines()
    assert lines[0].split()[:3] == ["bot", "today", "words"]
    newsy, poet = lines[1], lines[2]
    assert newsy.startswith("newsy") and newsy.endswith("-")  # its tick cleared the error
    assert poet.split()[:2] == ["poet", "1"]
    assert lines[-1].startswith("main:")


async def test_bot_shows_one_bot_and_names_a_missing_one(chat):
    call, _ = chat
    (one,) = await call("/bot newsy")
    assert "bot newsy: running" in one["text"]
    assert "last error (2026-12-01 10:00 CET): X said <no>" in one["text"]
    (missing,) = await call("/bot ghost")
    assert missing["text"] == "there is no bot named 'ghost'; `python bot.py bots list` shows them"
    (usage,) = await call("/bot")
    assert usage["text"] == commands.BOT_USAGE


async def test_bot_card_pauses_and_resumes_the_bot_with_its_button(chat, engine):
    call, farm = chat
    (card,) = await call("/bot poet")
    (pressed,) = await call.press(card, "⏸ Pause")
    assert pressed["method"] == "editMessageText"
    assert "bot poet: paused" in pressed["text"]
    farm.run_due()
    assert posts_today(engine, farm, "poet") == 0
    (again,) = await call.press(pressed, "▶️ Resume")
    assert "bot poet: running" in again["text"]
    farm.run_due()  # resuming makes its tick due at once
    assert posts_today(engine, farm, "poet") == 1


def posts_today(engine, farm, name: str) -> int:
    with engine.connect() as conn:
        return farm_bots.stats(conn, name, farm.clock()).posts_today


async def test_a_removed_bots_button_says_so_and_goes_away(chat, engine):
    call, farm = chat
    (card,) = await call("/bot poet")
    with engine.begin() as conn:
        farm_bots.remove(conn, "poet")
    (edit,) = await call.press(card, "⏸ Pause")
    assert edit["method"] == "editMessageReplyMarkup" and not edit.get("reply_markup")


async def test_farm_sends_the_chart_of_words_stored_and_unused(chat):
    call, _ = chat
    (photo,) = await call("/farm")
    assert photo["method"] == "sendPhoto"
    assert photo["caption"].startswith("farm: words stored and unused per bot, last 7 days")
