"""The farm's ticks: bots sharing one reader, their own cursors and dedupe, failures named."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from steward.farm import bots as farm_bots
from steward.farm import reader, secrets
from steward.farm.bots import Bot
from steward.farm.job import Farm
from steward.posting.store import posts as posts_table
from tests.clock import Clock
from tests.posting.helpers import outbox_rows, services

READER = {"X_READER_ACCESS_TOKEN": "99-token", "X_READER_ACCESS_SECRET": "99-secret"}


def farm_env(fake, key: str) -> dict[str, str]:
    return {
        "X_CONSUMER_KEY": "ck",
        "X_CONSUMER_SECRET": "cs",
        "X_API_URL": fake.url,
        "STEWARD_SECRET_KEY": key,
        "POST_INTERVAL": "60",
        **READER,
    }


def add_writer(engine, farm: Farm, name: str, user_id: str, **spec) -> None:
    bot = Bot(name, "{Word} and {word2}.", targets=["x"], **spec)
    with engine.begin() as conn:
        farm_bots.add(conn, bot, farm.clock())
        tokens = {"x_access_token": f"{user_id}-token", "x_access_secret": f"{user_id}-secret"}
        secrets.put(conn, farm.vault, name, tokens, farm.clock())


def timeline_reads(fake) -> int:
    return sum(c["path"].endswith("/timelines/reverse_chronological") for c in fake.calls)


def posts_by_user(fake) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for post in fake.posts:
        out.setdefault(post["user_id"], []).append(post["text"])
    return out


def test_three_bots_share_one_reader_with_one_timeline_read_per_interval(engine, fake, key):
    fake.add_user("99", "reader", "99-token", "99-secret")
    for uid, name in (("1", "ann"), ("2", "bob"), ("3", "cid")):
        fake.add_user(uid, name, f"{uid}-token", f"{uid}-secret")
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, **farm_env(fake, key)))
    farm.ensure_reader()
    for uid, name in (("1", "ann"), ("2", "bob"), ("3", "cid")):
        add_writer(engine, farm, name, uid)
    for hour in range(3):
        fake.add_timeline_post("99", f"Lanterns orchards meadows harbours number{hour} " * 1)
        fake.add_timeline_post("99", f"Violins pebbles glaciers canyons round{'abc'[hour]}")
        assert farm.run_due() == 4  # the reader's read and three bots' ticks
        assert farm.run_due() == 0  # nothing else is due until the next interval
        clock.advance(hours=1)
    assert timeline_reads(fake) == 3
    by_user = posts_by_user(fake)
    assert {uid: len(texts) for uid, texts in by_user.items()} == {"1": 3, "2": 3, "3": 3}
    for texts in by_user.values():
        assert len(set(texts)) == 3  # each writer's own dedupe
    with engine.connect() as conn:
        for name in ("ann", "bob", "cid"):
            stored, unused = farm_bots.word_counts(conn, name)
            assert stored > 0 and unused == 0  # each drew what the reader brought, itself
            assert farm_bots.stats(conn, name, clock()).posts_today == 3
        # /farm's chart has a line per writer, main included (sampled at each read).
        charted = reader.samples(conn, clock() - dt.timedelta(days=1))
    assert sorted(charted) == ["ann", "bob", "cid", "main"]
    assert len(charted["main"]) == 3


def test_a_new_reader_post_is_unused_for_every_writer_until_it_draws(engine, fake, key):
    fake.add_user("99", "reader", "99-token", "99-secret")
    fake.add_user("1", "ann", "1-token", "1-secret")
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, **farm_env(fake, key)))
    farm.ensure_reader()
    add_writer(engine, farm, "ann", "1")
    add_writer(engine, farm, "slow", "1", interval_min=180, paused=True)
    fake.add_timeline_post("99", "Lanterns orchards meadows harbours")
    farm.run_due()
    with engine.connect() as conn:
        assert farm_bots.word_counts(conn, "ann")[1] == 0
        assert farm_bots.word_counts(conn, "slow") == (4, 4)


def test_a_failing_bot_reaches_the_owner_once_by_name_and_again_when_it_recovers(engine, fake, key):
    fake.add_user("1", "ann", "1-token", "1-secret")
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, **farm_env(fake, key) | {"X_READER_ACCESS_TOKEN": ""}))
    with engine.begin() as conn:
        farm_bots.add(conn, Bot("poet", "%s!", words="rain,snow", targets=["x"]), clock())
    for _ in range(2):
        farm.run_due()
        clock.advance(hours=1)
    texts = [r.text for r in outbox_rows(engine)]
    assert texts == ["⚠️ Bot <b>poet</b>: no X tokens: run python auth_tool.py x --bot poet"]
    assert farm.problem() == "1 bot(s) failing: poet (/bots shows why)"  # /status: ⚠️ farm
    with engine.begin() as conn:
        tokens = {"x_access_token": "1-token", "x_access_secret": "1-secret"}
        secrets.put(conn, farm.vault, "poet", tokens, clock())
    farm.run_due()
    assert [r.text for r in outbox_rows(engine)][1:] == ["✅ Bot <b>poet</b> posts again."]
    assert farm.problem() is None
    assert len(fake.posts) == 1 and "1-token" not in str(outbox_rows(engine))


def test_a_tick_rerun_after_a_crash_makes_no_slot_twice(engine, fake, key):
    fake.add_user("1", "ann", "1-token", "1-secret")
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, **farm_env(fake, key) | {"X_READER_ACCESS_TOKEN": ""}))
    add_writer(engine, farm, "ann", "1", per_tick=3, words="rain,snow,sun,moon,wind")
    farm.run_due()
    assert len(fake.posts) == 3
    # A crash after X took the posts but before they were marked: the rows are pending again,
    # and a worker runs the same tick again (its lease ran out).
    with engine.begin() as conn:
        conn.execute(sa.update(posts_table).values(state="pending", sent_at=None))
        tick = conn.scalar(sa.select(posts_table.c.tick))
    from steward.farm import leases

    with engine.begin() as conn:
        leases.reschedule(conn, "bot", "ann", tick)
    farm.run_due()
    assert len(fake.posts) == 3
    with engine.connect() as conn:
        states = conn.scalars(sa.select(posts_table.c.state)).all()
    assert states == ["sent", "sent", "sent"]


def test_paused_bots_post_nothing_and_move_on(engine, fake, key):
    clock = Clock(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))
    farm = Farm(services(engine, clock, **farm_env(fake, key) | {"X_READER_ACCESS_TOKEN": ""}))
    with engine.begin() as conn:
        farm_bots.add(conn, Bot("poet", "%s!", words="rain", paused=True), clock())
    assert farm.run_due() == 1
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(posts_table)) == 0
        assert farm_bots.stats(conn, "poet", clock()).next_post is None
