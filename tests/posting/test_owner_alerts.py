"""When posting cannot work, the owner hears it once in the chat, with the reason and the fix.

Told again only when the reason changes, shown in /status, and told when posting works again. A
channel without X's 280-character limit keeps posting when only X cannot.
"""

from __future__ import annotations

import asyncio

from steward.config import load_settings
from steward.posting.job import problem as feature_problem
from steward.posting.job import status_lines
from steward.posting.problems import PROBLEM_KEY
from steward.worker import build_worker
from tests.clock import Clock
from tests.command_calls import command_caller
from tests.fakes.telegram_api import FakeTelegram
from tests.posting.helpers import OWNER_CHAT, outbox_rows, poster, x_env

TOKEN = "123456:TEST-token-for-posting"
OWNER = int(OWNER_CHAT)


def owner_messages(engine) -> list[str]:
    return [r.text for r in outbox_rows(engine) if r.chat_id == OWNER_CHAT]


def test_running_out_of_words_is_told_once_with_the_fix_and_shown_in_status(engine, fake):
    clock = Clock()
    env = x_env(fake, POST_TEMPLATE="Only {word} today", POST_WORDS="owl")
    p = poster(engine, clock, **env)
    p.scheduled_tick(clock())
    assert len(fake.posts) == 1 and owner_messages(engine) == []
    for _ in range(3):
        clock.advance(minutes=60)
        p.scheduled_tick(clock())
    [told] = owner_messages(engine)
    assert "stuck" in told and "Fix:" in told and "POST_WORDS" in told
    assert status_lines(p)[0].startswith("⚠️ stuck since")
    clock.advance(minutes=60)
    fresh = poster(engine, clock, **{**env, "POST_WORDS": "owl,fox,elk"})
    fresh.scheduled_tick(clock())
    assert len(fake.posts) == 2, "the failed ticks are not made up for in a burst"
    assert owner_messages(engine)[-1] == "✅ Posting works again."
    assert fresh.load(PROBLEM_KEY) is None and not status_lines(fresh)[0].startswith("⚠️")


def test_a_template_too_long_for_x_still_posts_to_the_telegram_channel(engine, fake):
    clock = Clock()
    long = "{word} " + "and so on " * 40
    env = x_env(fake, POST_TEMPLATE=long, POST_TELEGRAM_CHAT="@mychannel")
    p = poster(engine, clock, **env)
    for _ in range(2):
        p.scheduled_tick(clock())
        clock.advance(minutes=60)
    channel = [r for r in outbox_rows(engine) if r.chat_id == "@mychannel"]
    assert len(channel) == 2 and fake.posts == []
    [told] = owner_messages(engine)
    assert "X" in told and "280" in told


def test_an_empty_reader_timeline_is_told_to_the_owner(engine, fake):
    fake.add_user("7", "reader", "7-token", "7-secret")
    env = x_env(fake, X_READER_ACCESS_TOKEN="7-token", X_READER_ACCESS_SECRET="7-secret")
    clock = Clock()
    poster(engine, clock, **env).scheduled_tick(clock())
    [told] = owner_messages(engine)
    assert "no words" in told and "Fix:" in told


async def test_status_marks_posting_with_a_warning_while_it_is_stuck(engine, store_url, fake):
    clock = Clock()
    env = {
        **x_env(fake, POST_TEMPLATE="Only {word} today", POST_WORDS="owl"),
        "DATABASE_URL": store_url,
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_CHAT_ID": str(OWNER),
        "ALLOWED_USERS": str(OWNER),
    }
    with FakeTelegram(token=TOKEN, enforce_limits=False) as telegram:
        env["TELEGRAM_API_URL"] = telegram.url
        world = build_worker(load_settings(environ=env, env_file=None), clock=clock)
        try:
            async with command_caller(telegram, TOKEN, OWNER, world.commands) as call:
                [fine] = await call("/status")
                assert "✅ <b>posting</b>" in fine["html"]
                p = poster(engine, clock, **env)
                for _ in range(3):  # one word: the second tick has nothing new to post
                    await asyncio.to_thread(p.scheduled_tick, clock())
                    clock.advance(minutes=60)
                [stuck] = await call("/status")
        finally:
            world.engine.dispose()
    assert "⚠️ <b>posting</b>" in stuck["html"] and "✅ <b>posting</b>" not in stuck["html"]


def test_refused_credentials_are_posting_s_problem_until_they_change(engine, fake):
    clock = Clock()
    env = x_env(fake)
    assert feature_problem(poster(engine, clock, **env)) is None
    fake.revoke("42-token")
    p = poster(engine, clock, **env)
    p.scheduled_tick(clock())
    assert feature_problem(p) == "X refused the credentials"
    assert feature_problem(poster(engine, clock, **{**env, "X_ACCESS_TOKEN": "43-token"})) is None
