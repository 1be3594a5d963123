"""Every bot posts through posting's Poster into the one `posts` table: ids unique over all bots,
dedupe and the monthly cap per bot, a killed tick finished once by the bot's next one."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from steward import db
from steward.farm import bots as farm_bots
from steward.farm import secrets
from steward.farm.bots import Bot
from steward.farm.job import Farm
from steward.posting.poster import Poster
from steward.posting.store import posts as posts_table
from tests.clock import Clock
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.posting.helpers import outbox_rows, poster, services

HANDLE, APP_PASSWORD = "shared.bsky.social", "abcd-efgh-ijkl-mnop"
DECEMBER = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def add_bot(engine, farm: Farm, bot: Bot, tokens: dict[str, str] | None = None) -> None:
    with engine.begin() as conn:
        farm_bots.add(conn, bot, farm.clock())
        if tokens:
            secrets.put(conn, farm.vault, bot.name, tokens, farm.clock())


def rows(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(posts_table).order_by(posts_table.c.id)).all()


def texts_by_bot(engine) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in rows(engine):
        if row.state == "sent":
            out.setdefault(row.bot, []).append(row.text)
    return out


def test_a_farm_bot_and_main_on_one_bluesky_and_mastodon_account_each_post_once(engine, key):
    """Bluesky's record key and Mastodon's Idempotency-Key come from the post id: a farm post
    and a main post with the same id number (same text, same account) were taken for one."""
    clock = Clock(DECEMBER)
    with FakeBluesky() as bluesky, FakeMastodon(max_characters=600) as mastodon:
        bluesky.add_account(HANDLE, APP_PASSWORD)
        mastodon.add_token("shared-token")
        env = {
            "POST_TEMPLATE": "%s at dusk.",
            "POST_WORDS": "owls",
            "MASTODON_API_URL": mastodon.url,
            "MASTODON_ACCESS_TOKEN": "shared-token",
            "BLUESKY_HANDLE": HANDLE,
            "BLUESKY_APP_PASSWORD": APP_PASSWORD,
            "BLUESKY_API_URL": bluesky.url,
            "STEWARD_SECRET_KEY": key,
        }
        main = poster(engine, clock, **env)
        assert {o.state for o in main.scheduled_tick(clock())} == {"sent"}
        farm = Farm(services(engine, clock, **env))
        tokens = {
            "bluesky_handle": HANDLE,
            "bluesky_app_password": APP_PASSWORD,
            "mastodon_access_token": "shared-token",
        }
        bot = Bot("echo", "%s at dusk.", words="owls", targets=["mastodon", "bluesky"])
        add_bot(engine, farm, bot, tokens)
        assert farm.run_due() == 1
        assert [p["text"] for p in bluesky.posts] == ["owls at dusk."] * 2
        assert [s["text"] for s in mastodon.statuses] == ["owls at dusk."] * 2
    found = rows(engine)
    assert sorted((r.bot, r.channel, r.state) for r in found) == [
        ("echo", "bluesky", "sent"), ("echo", "mastodon", "sent"),
        ("main", "bluesky", "sent"), ("main", "mastodon", "sent"),
    ]  # fmt: skip
    assert len({r.remote_id for r in found}) == 4


class Killed(BaseException):
    """The process dying mid-tick: nothing of ours catches it."""


def test_a_farm_tick_killed_between_recording_and_publishing_is_finished_once(
    engine, fake, key, monkeypatch
):
    fake.add_user("1", "ann", "1-token", "1-secret")
    clock = Clock(DECEMBER)
    env = {"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_API_URL": fake.url}
    farm = Farm(services(engine, clock, STEWARD_SECRET_KEY=key, **env))
    tokens = {"x_access_token": "1-token", "x_access_secret": "1-secret"}
    add_bot(engine, farm, Bot("ann", "%s at dawn.", words="owls,bats,moths", targets=["x"]), tokens)

    def die(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(Poster, "send", die)
        with pytest.raises(Killed):
            farm.run_due()
    [left] = rows(engine)
    assert (left.bot, left.state, left.attempts) == ("ann", "pending", 1)
    assert fake.posts == []
    clock.advance(minutes=61)  # the dead worker's unit lease and post claim have run out
    again = Farm(services(engine, clock, STEWARD_SECRET_KEY=key, **env))
    assert again.run_due() == 1  # the killed tick, run again: its post goes out, nothing new
    assert [p["text"] for p in fake.posts] == [left.text]
    assert [(r.id, r.state) for r in rows(engine)] == [(left.id, "sent")]
    clock.advance(minutes=60)
    assert again.run_due() == 1
    assert len(fake.posts) == 2 and fake.posts[1]["text"] != left.text


def test_two_bots_may_post_the_same_text_but_none_repeats_its_own(engine, key):
    clock = Clock(DECEMBER)
    env = {"POST_TEMPLATE": "%s at noon.", "POST_WORDS": "owls,bats", "STEWARD_SECRET_KEY": key}
    farm = Farm(services(engine, clock, **env))
    for name in ("ann", "bob"):
        add_bot(engine, farm, Bot(name, "%s at noon.", words="owls,bats", per_tick=2))
    main = poster(engine, clock, **env)
    for _ in range(3):
        main.run_tick(clock(), want=2)
        farm.run_due()
        clock.advance(minutes=61)
    both = ["bats at noon.", "owls at noon."]
    assert {bot: sorted(texts) for bot, texts in texts_by_bot(engine).items()} == {
        "main": both, "ann": both, "bob": both,
    }  # fmt: skip
    # Each bot is told it ran out once, by name; main as it always was.
    stuck = [r.text for r in outbox_rows(engine) if "Posting is stuck" in r.text]
    assert sorted(t.split(":")[0] for t in stuck) == [
        "⚠️ Bot <b>ann</b>", "⚠️ Bot <b>bob</b>", "⚠️ Posting is stuck",
    ]  # fmt: skip
    # Each is told the fix that is its own: main's variables, a farm bot's `bots edit`.
    fixes = {t.split(":")[0]: t.split("Fix: ", 1)[1] for t in stuck}
    assert "POST_WORDS" in fixes["⚠️ Posting is stuck"]
    assert "bots edit ann --words" in fixes["⚠️ Bot <b>ann</b>"]
    assert "bots edit bob --words" in fixes["⚠️ Bot <b>bob</b>"]


def test_the_monthly_cap_on_x_is_per_bot(engine, fake, key):
    for uid in ("1", "2"):
        fake.add_user(uid, f"user{uid}", f"{uid}-token", f"{uid}-secret")
    clock = Clock(DECEMBER)
    env = {"X_CONSUMER_KEY": "ck", "X_CONSUMER_SECRET": "cs", "X_API_URL": fake.url}
    farm = Farm(services(engine, clock, STEWARD_SECRET_KEY=key, **env))
    words = "owls,bats,moths,larks,wrens"
    for name, uid, cap in (("ann", "1", 1), ("bob", "2", 0)):
        tokens = {"x_access_token": f"{uid}-token", "x_access_secret": f"{uid}-secret"}
        bot = Bot(name, "%s at dusk.", words=words, targets=["x"], monthly_limit=cap)
        add_bot(engine, farm, bot, tokens)
    for _ in range(3):
        farm.run_due()
        clock.advance(minutes=61)
    assert {bot: len(texts) for bot, texts in texts_by_bot(engine).items()} == {"ann": 1, "bob": 3}
    capped = [r.text for r in outbox_rows(engine) if "stopped for" in r.text]
    assert capped == [
        "Bot <b>ann</b>: Posting to X stopped for 2026-12: --monthly-limit=1 posts are out. "
        "It goes on next month, or raise the limit."
    ]
    with engine.connect() as conn:
        assert farm_bots.last_error(conn, "ann") == "--monthly-limit=1 reached for this month"
        assert farm_bots.last_error(conn, "bob") is None
    with engine.begin() as conn:  # removed, its posting state goes; its posts and bob's stay
        farm_bots.remove(conn, "ann")
        keys = conn.scalars(sa.select(db.state.c.key)).all()
    assert not [k for k in keys if k.startswith("farm.ann.")]
    assert "farm.bob.posting.tick" in keys and len(rows(engine)) == 4
