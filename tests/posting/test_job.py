"""The posting tick: dry runs, X and a Telegram channel, dedupe, 429s, refused keys and the cap."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from telegram import Bot

from steward.config import ConfigError
from steward.posting.job import TICK_KEY, build_feature, status_lines
from steward.posting.wiring import DRY_RUN_HINT
from steward.telegram.sender import OutboxSender
from steward.telegram.sinks import TelegramSink
from tests.clock import Clock
from tests.fakes.telegram_api import FakeTelegram
from tests.posting.helpers import (
    bot,
    outbox_rows,
    poster,
    rows,
    services,
    tweet_calls,
    x_env,
)
from tests.worker_process import clean_env


@pytest.fixture
def clock():
    return Clock()


def test_it_runs_dry_with_no_configuration_and_says_how_to_post(engine, clock):
    feature = build_feature(services(engine, clock, TWEETS_PER_TICK="2"))
    assert feature.enabled and feature.name == "posting"
    assert DRY_RUN_HINT in feature.summary
    assert [job.name for job in feature.jobs] == ["posting.tick"]
    p = poster(engine, clock, TWEETS_PER_TICK="2")
    outcomes = p.scheduled_tick(clock())
    assert [o.channel for o in outcomes] == ["dry-run", "dry-run"]
    dry = rows(engine, "dry-run")
    assert len({r.text for r in dry}) == 2 and all(r.state == "sent" for r in dry)


def test_a_tick_posts_tweets_per_tick_distinct_posts_to_x(engine, clock, fake):
    p = poster(engine, clock, **x_env(fake, TWEETS_PER_TICK="3"))
    p.scheduled_tick(clock())
    assert len(fake.posts) == 3
    assert len({post["text"] for post in fake.posts}) == 3
    sent = rows(engine, "x")
    assert [(r.state, r.remote_id, r.text) for r in sent] == [
        ("sent", post["id"], post["text"]) for post in fake.posts
    ]
    assert all(r.url == f"https://x.com/alice/status/{r.remote_id}" for r in sent)


async def test_a_tick_publishes_to_a_telegram_channel_through_the_bot_api(engine, clock, fake):
    token = "123456:TEST-token"
    with FakeTelegram(token=token, enforce_limits=False) as telegram:
        telegram.add_chat(-1001, type="channel", title="News", username="mychannel")
        env = x_env(fake, TWEETS_PER_TICK="2", POST_TELEGRAM_CHAT="@mychannel")
        p = poster(engine, clock, **env)
        p.scheduled_tick(clock())
        bot = Bot(token, base_url=f"{telegram.url}/bot", base_file_url=f"{telegram.url}/file/bot")
        await bot.initialize()
        sender = OutboxSender(engine, TelegramSink(bot), outbox=p.outbox)
        await sender.start()
        assert await sender.flush(timeout=10)
        await sender.stop()
        await bot.shutdown()
    in_channel = [m["text"] for m in telegram.messages(-1001)]
    assert sorted(in_channel) == sorted(post["text"] for post in fake.posts)
    assert len(set(in_channel)) == 2
    assert all(r.state == "sent" for r in rows(engine, "telegram"))


def test_it_never_posts_the_same_text_twice_across_restarts(engine, clock, fake):
    env = x_env(fake, POST_TEMPLATE="%s!", POST_WORDS="alpha,beta")
    for _ in range(3):
        poster(engine, clock, **env).scheduled_tick(clock())
        clock.advance(minutes=30)
    assert sorted(post["text"] for post in fake.posts) == ["alpha!", "beta!"]
    exhausted = poster(engine, clock, **env)
    assert exhausted.scheduled_tick(clock()) == []
    assert "no post made" in exhausted.problem
    assert len(tweet_calls(fake)) == 2, "X was never asked to post a text twice"


def test_a_duplicate_from_x_marks_the_text_used_and_posts_another(engine, clock, fake):
    fake.add_timeline_post("42", "alpha!")
    fake.add_timeline_post("42", "beta!")
    env = x_env(fake, POST_TEMPLATE="%s!", POST_WORDS="alpha,beta,gamma")
    p = poster(engine, clock, **env)
    # A draw that tries the texts X already has first, so the regeneration is exercised.
    p.rng = next(
        random.Random(seed)
        for seed in range(100)
        if random.Random(seed).choice(["alpha", "beta", "gamma"]) != "gamma"
    )
    p.scheduled_tick(clock())
    assert [post["text"] for post in fake.posts] == ["gamma!"]
    refused = [c for c in tweet_calls(fake) if c["status"] == 403]
    assert refused, "X answered 403 duplicate at least once"
    states = {r.text: r.state for r in rows(engine, "x")}
    assert states["gamma!"] == "sent"
    assert all(states[t] == "failed" for t in states if t != "gamma!")


def test_a_429_skips_ticks_until_x_says_the_limit_resets(engine, clock, fake):
    fake.rate_limit("/2/tweets", reset_in_seconds=600)
    env = x_env(fake)
    poster(engine, clock, **env).scheduled_tick(clock())
    assert len(tweet_calls(fake)) == 1 and fake.posts == []
    assert [r.state for r in rows(engine, "x")] == ["pending"]
    clock.advance(minutes=5)
    p = poster(engine, clock, **env)
    assert p.scheduled_tick(clock()) == []
    assert len(tweet_calls(fake)) == 1, "no call to X while the limit holds"
    assert any("rate limit" in line for line in status_lines(p))
    clock.advance(minutes=6)
    poster(engine, clock, **env).scheduled_tick(clock())
    assert len(fake.posts) == 2, "the waiting post and the new tick's post"
    assert [r.state for r in rows(engine, "x")] == ["sent", "sent"]


def test_refused_credentials_alert_the_owner_once_and_pause_until_they_change(engine, clock, fake):
    wrong = x_env(fake, X_ACCESS_SECRET="wrong-secret-value")
    for _ in range(3):  # three ticks, two of them after a restart
        poster(engine, clock, **wrong).scheduled_tick(clock())
        clock.advance(minutes=30)
    assert len(tweet_calls(fake)) == 1, "paused after the first refusal"
    alerts = [r for r in outbox_rows(engine) if r.key and r.key.startswith("posting:x-refused:")]
    assert len(alerts) == 1 and alerts[0].urgent
    assert "wrong-secret-value" not in alerts[0].text + alerts[0].key
    assert "wrong-secret-value" not in str(status_lines(poster(engine, clock, **wrong)))
    fixed = poster(engine, clock, **x_env(fake))
    fixed.recover()
    assert len(fake.posts) == 1, "the post that waited goes out once the keys are fixed"
    fixed.scheduled_tick(clock())
    assert len(fake.posts) == 2


def test_the_monthly_cap_stops_x_posts_until_next_month(engine, fake):
    clock = Clock(dt.datetime(2026, 3, 31, 22, 0, tzinfo=dt.UTC))
    env = x_env(fake, POST_MONTHLY_LIMIT="2", TWEETS_PER_TICK="3")
    poster(engine, clock, **env).scheduled_tick(clock())
    clock.advance(minutes=30)
    p = poster(engine, clock, **env)
    p.scheduled_tick(clock())
    assert len(fake.posts) == 2
    assert "X posts this month: 2 of 2" in status_lines(p)
    notices = [r for r in outbox_rows(engine) if r.key == "posting:cap:2026-03"]
    assert len(notices) == 1
    clock.advance(hours=2)  # April
    poster(engine, clock, **env).scheduled_tick(clock())
    assert len(fake.posts) == 4


def test_a_pause_holds_across_a_restart_and_shows_in_the_status(engine, clock, fake):
    poster(engine, clock, **x_env(fake)).set_paused("@owner")
    p = poster(engine, clock, **x_env(fake))
    assert p.scheduled_tick(clock()) == []
    assert fake.posts == []
    assert any(line.startswith("paused by @owner") for line in status_lines(p))
    p.set_paused(None)
    poster(engine, clock, **x_env(fake)).scheduled_tick(clock())
    assert len(fake.posts) == 1


def test_a_paused_worker_starting_up_posts_nothing_until_resumed(engine, clock, fake):
    cut_short = {"at": clock().isoformat(), "want": 2, "done": False}
    p = poster(engine, clock, **x_env(fake))
    p.save(TICK_KEY, cut_short)  # a SIGKILL in the middle of a tick, then /pause_posting
    p.set_paused("@owner")
    restarted = poster(engine, clock, **x_env(fake))
    restarted.recover()
    assert fake.posts == []
    restarted.set_paused(None)
    clock.advance(minutes=30)
    restarted.scheduled_tick(clock())
    assert len(fake.posts) == 3, "the cut-short tick's two, then this tick's one"


def test_the_status_shows_the_next_tick(engine, clock, fake):
    s = services(engine, clock, **x_env(fake))
    s.next_runs = lambda: {"posting.tick": dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.UTC)}
    lines = build_feature(s).status()
    assert "X posts this month: 0 (no monthly cap)" in lines
    assert "next tick: 2026-05-01T12:30+00:00" in lines


def test_a_tick_is_written_down_before_its_posts_and_marked_done_after(engine, clock, fake):
    p = poster(engine, clock, **x_env(fake, TWEETS_PER_TICK="2"))
    p.scheduled_tick(clock())
    assert p.load(TICK_KEY) == {"at": clock().isoformat(), "want": 2, "done": True}


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"POST_TEMPLATE": "no slot here"}, "POST_TEMPLATE"),
        ({"POST_WORDS": "missing/words.txt"}, "POST_WORDS"),
        ({"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_ACCESS_TOKEN": "t"}, "X_ACCESS"),
        ({"X_READER_ACCESS_TOKEN": "7-t", "X_READER_ACCESS_SECRET": "s"}, "X_CONSUMER_KEY"),
    ],
)
def test_bad_posting_settings_raise_a_config_error_naming_the_variable(
    engine, clock, env, variable
):
    with pytest.raises(ConfigError) as info:
        build_feature(services(engine, clock, **env))
    assert str(info.value).startswith(variable)


def test_a_broken_template_stops_the_worker_with_one_line_and_status_78(tmp_path):
    result = bot(clean_env(POST_TEMPLATE='{"origin": ["#animal#"]}'), tmp_path)
    assert result.returncode == 78, result.stdout
    errors = [line for line in result.stdout.splitlines() if "POST_TEMPLATE" in line]
    assert len(errors) == 1 and "animal" in errors[0]
    assert "Traceback" not in result.stdout
