"""The shared reader: one home-timeline read per interval in all, main and the farm's bots drawing
from it with their own cursors, and the owner told once when it breaks and once when it mends."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from steward.farm import bots as farm_bots
from steward.farm import secrets
from steward.farm.bots import Bot
from steward.farm.job import Farm
from steward.posting import reader
from steward.posting.job import problem as feature_problem
from steward.posting.job import status_lines
from steward.posting.reader import farm_cursors, farm_words
from tests.clock import Clock
from tests.posting.helpers import OWNER_CHAT, outbox_rows, poster, services, x_env

START = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
TIMELINE = re.compile(r"^/2/users/\d+/timelines/reverse_chronological$")


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


def env(fake, key: str, **more: str) -> dict[str, str]:
    """Main posts as alice (42); the reader account is 99; the farm's tokens need the key."""
    return x_env(
        fake,
        X_READER_ACCESS_TOKEN="99-token",
        X_READER_ACCESS_SECRET="99-secret",
        STEWARD_SECRET_KEY=key,
        POST_INTERVAL="60",
        POST_TEMPLATE="{Word} and {word2}.",
        **more,
    )


def timeline_reads(fake) -> list[dict[str, str]]:
    return [dict(parse_qsl(c["query"])) for c in fake.calls if TIMELINE.match(c["path"])]


def add_bot(engine, farm: Farm, name: str, user_id: str) -> None:
    with engine.begin() as conn:
        farm_bots.add(conn, Bot(name, "{Word} with {word2}!", targets=["x"]), farm.clock())
        tokens = {"x_access_token": f"{user_id}-token", "x_access_secret": f"{user_id}-secret"}
        secrets.put(conn, farm.vault, name, tokens, farm.clock())


def posts_by_user(fake) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for post in fake.posts:
        out.setdefault(post["user_id"], []).append(post["text"])
    return out


def stored_words(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(farm_words.c.word)))


def owner_messages(engine) -> list[str]:
    return [r.text for r in outbox_rows(engine) if r.chat_id == OWNER_CHAT]


def world(engine, fake, key: str, clock: Clock):
    """What the worker builds from these settings: posting's Poster (main) and the Farm."""
    fake.add_user("99", "reader", "99-token", "99-secret")
    settings = env(fake, key)
    farm = Farm(services(engine, clock, **settings))
    farm.ensure_reader()
    return poster(engine, clock, **settings), farm


def interval(main, farm: Farm, clock: Clock) -> None:
    """One interval of the worker: the farm's due units (the read first), then main's tick."""
    farm.run_due()
    main.scheduled_tick(clock())
    clock.advance(hours=1)


def test_main_and_two_farm_bots_share_one_home_timeline_read_per_interval(engine, fake, key):
    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    for uid, name in (("1", "ann"), ("2", "bob")):
        fake.add_user(uid, name, f"{uid}-token", f"{uid}-secret")
        add_bot(engine, farm, name, uid)
    for hour in range(3):
        fake.add_timeline_post("99", f"Lanterns orchards meadows harbours hour{'abc'[hour]}")
        fake.add_timeline_post("99", f"Violins pebbles glaciers canyons round{'xyz'[hour]}")
        interval(main, farm, clock)
        assert len(timeline_reads(fake)) == hour + 1, "one read in all, whoever draws from it"
        with engine.connect() as conn:
            newest = conn.scalar(sa.select(sa.func.max(farm_words.c.id)))
            cursor = conn.scalar(
                sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == "main")
            )
        assert cursor == newest, "main drew this interval's words with its own cursor"
    by_user = posts_by_user(fake)
    assert {uid: len(set(texts)) for uid, texts in by_user.items()} == {"42": 3, "1": 3, "2": 3}
    words = stored_words(engine)
    for text in by_user["42"]:
        first, second = re.fullmatch(r"(\w+) and (\w+)\.", text).groups()
        assert {first.lower(), second} <= words, f"{text!r}: main's words come from the store"
    assert owner_messages(engine) == []


def test_the_reader_runs_for_main_alone_when_the_farm_has_no_bots(engine, fake, key):
    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    for hour in range(2):
        fake.add_timeline_post("99", f"Comets teapots senates otters number{'ab'[hour]}")
        interval(main, farm, clock)
    assert len(timeline_reads(fake)) == 2
    assert int(timeline_reads(fake)[1]["since_id"]) > 0, "only posts newer than the last read"
    assert [p["user_id"] for p in fake.posts] == ["42", "42"]


def test_a_reader_failure_is_told_once_and_its_recovery_once(engine, fake, key):
    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    fake.add_user("1", "ann", "1-token", "1-secret")
    add_bot(engine, farm, "ann", "1")
    fake.add_timeline_post("99", "Lanterns orchards meadows harbours violins pebbles glaciers")
    interval(main, farm, clock)
    fake.fail_next("/2/users/99/timelines", 503, count=3)
    for _ in range(3):  # three intervals, on two days: told once all the same
        interval(main, farm, clock)
        clock.advance(hours=7)
    [broken] = owner_messages(engine)
    assert broken.startswith("⚠️ Reader: could not read the reader's timeline: 503")
    assert "X_READER_ACCESS_TOKEN" in broken
    assert feature_problem(main).startswith("could not read the reader's timeline: 503")
    assert status_lines(main)[0].startswith("⚠️ reader failing since")
    assert [p["user_id"] for p in fake.posts].count("42") == 4, "main posts from stored words"
    for _ in range(2):
        interval(main, farm, clock)
    assert owner_messages(engine)[1:] == [
        "✅ The reader's timeline reads again: its words reach the posts once more."
    ]
    assert feature_problem(main) is None
    assert len(timeline_reads(fake)) == 6


def test_with_nothing_ever_read_a_broken_reader_is_still_told_once(engine, fake, key):
    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    fake.revoke("99-token")
    for _ in range(2):
        interval(main, farm, clock)
    [told] = owner_messages(engine)
    assert "Reader" in told and "X_READER_ACCESS_TOKEN" in told
    assert fake.posts == [] and feature_problem(main).startswith("could not read the reader")


def test_a_writer_without_a_cursor_starts_at_the_newest_words(engine):
    with engine.begin() as conn:
        rows = [{"word": f"word{i:04d}", "read_at": START} for i in range(reader.DRAWN + 50)]
        conn.execute(sa.insert(farm_words), rows)
        words, cursor = reader.draw(conn, "main")
        newest = conn.scalar(sa.select(sa.func.max(farm_words.c.id)))
    assert len(words) == reader.DRAWN and words[-1] == f"word{reader.DRAWN + 49:04d}"
    assert cursor == newest


def test_a_preview_draws_main_s_words_without_using_them_up(engine, fake, key):
    from steward.posting import manual

    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    fake.add_timeline_post("99", "Lanterns orchards meadows harbours")
    farm.run_due()
    [text] = manual.preview(main, 1)  # `post --dry-run`, and each of /post's drafts
    assert set(re.findall(r"\w+", text.lower())) - {"and"} <= stored_words(engine)
    with engine.connect() as conn:
        assert (
            conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == "main"))
            is None
        )
    main.scheduled_tick(clock())
    with engine.connect() as conn:
        assert conn.scalar(sa.select(farm_cursors.c.word_id).where(farm_cursors.c.bot == "main"))


async def test_the_first_read_comes_at_start_before_main_s_first_tick(engine, fake, key):
    clock = Clock(START)
    main, farm = world(engine, fake, key, clock)
    fake.add_timeline_post("99", "Lanterns orchards meadows harbours")
    await farm.start()  # the worker starts every feature, then the scheduler's first tick
    try:
        assert len(timeline_reads(fake)) == 1
        main.scheduled_tick(clock())
    finally:
        await farm.stop()
    assert [p["user_id"] for p in fake.posts] == ["42"] and owner_messages(engine) == []
