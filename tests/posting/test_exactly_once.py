"""Each post goes out exactly once, whatever moment the process dies at.

First each crash point on its own (the store left as a kill there leaves it), then
`python bot.py post` killed with SIGKILL at random moments over many runs against the fake X.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from steward import db
from steward.posting import store
from steward.posting.job import TICK_KEY
from tests.fakes.x_api import FakeX
from tests.posting.helpers import Clock, bot, outbox_rows, poster, rows, tweet_calls, x_env
from tests.worker_process import ROOT, clean_env


class SlowX(FakeX):
    """The fake X taking a moment per post, so that kills land inside ticks."""

    def handle(self, method, target, headers, body):
        if method == "POST" and target.startswith("/2/tweets"):
            time.sleep(0.05)
        return super().handle(method, target, headers, body)


@pytest.fixture
def fake():
    with SlowX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-token", "42-secret")
        yield server


def left_pending(engine, clock, text: str, channel: str = "x") -> int:
    with engine.begin() as conn:
        return store.record_pending(conn, text=text, channel=channel, now=clock())


def test_a_post_recorded_but_never_sent_goes_out_once_at_start(engine, fake):
    clock = Clock()
    left_pending(engine, clock, "left behind")
    poster(engine, clock, **x_env(fake)).recover()
    assert [p["text"] for p in fake.posts] == ["left behind"]
    assert rows(engine)[0].state == "sent" and rows(engine)[0].remote_id == fake.posts[0]["id"]


def test_a_post_that_reached_x_before_the_crash_is_not_posted_again(engine, fake):
    clock = Clock()
    left_pending(engine, clock, "already out")
    fake.add_timeline_post("42", "already out")  # X took it; the process died before marking
    poster(engine, clock, **x_env(fake)).recover()
    assert fake.posts == [], "X's duplicate answer proves it went out: no second post"
    assert [r.state for r in rows(engine)] == ["sent"]


def test_a_tick_cut_short_is_finished_at_start_without_extra_posts(engine, fake):
    clock = Clock()
    env = x_env(fake, TWEETS_PER_TICK="3")
    p = poster(engine, clock, **env)
    p.save(TICK_KEY, {"at": clock().isoformat(), "want": 3, "done": False})
    composer_text = "the first slot's post"
    with engine.begin() as conn:  # slot 0 claimed and recorded, then the kill
        conn.execute(
            db.state.insert().values(
                key=f"posting.slot:{clock().isoformat()}:0", value={}, updated_at=clock()
            )
        )
        store.record_pending(conn, text=composer_text, channel="x", now=clock(), tick=clock())
    poster(engine, clock, **env).recover()
    assert len(fake.posts) == 3 and fake.posts[0]["text"] == composer_text
    assert poster(engine, clock, **env).load(TICK_KEY)["done"] is True
    poster(engine, clock, **env).recover()
    assert len(fake.posts) == 3, "a finished tick is not finished again"


def test_a_telegram_channel_post_is_queued_once_however_often_it_is_retried(engine, fake):
    clock = Clock()
    post_id = left_pending(engine, clock, "to the channel", "telegram")
    env = x_env(fake, POST_TELEGRAM_CHAT="@mychannel")
    with engine.begin() as conn:  # the first attempt queued it, then the kill
        poster(engine, clock, **env).outbox.notify_in(
            conn, "to the channel", chat_id="@mychannel", key=f"post:{post_id}"
        )
    poster(engine, clock, **env).recover()
    queued = [r for r in outbox_rows(engine) if r.chat_id == "@mychannel"]
    assert [r.key for r in queued] == [f"post:{post_id}"]
    assert rows(engine, "telegram")[0].state == "sent"


def test_sigkill_at_random_moments_neither_loses_nor_repeats_a_post(tmp_path, fake):
    per_tick, trials = 3, 24
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'steward.sqlite'}",
        TWEETS_PER_TICK=str(per_tick),
        **x_env(fake),
    )
    first = bot(env, tmp_path, "post")
    assert first.returncode == 0, first.stdout
    completed, rng = 1, random.Random(20261123)
    for _ in range(trials):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bot.py"), "post"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            proc.wait(timeout=rng.uniform(0.3, 2.0))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        completed += proc.returncode == 0
    last = bot(env, tmp_path, "post")
    assert last.returncode == 0, last.stdout
    completed += 1

    engine = db.make_engine(env["DATABASE_URL"])
    try:
        x_rows = rows(engine, "x")
        with engine.connect() as conn:
            last_tick = store.load_value(conn, TICK_KEY)
    finally:
        engine.dispose()
    assert completed < trials + 2, "some runs were killed mid-way"
    assert all(r.state == "sent" for r in x_rows), [r for r in x_rows if r.state != "sent"]
    assert last_tick["done"] is True
    # Exactly once: every post X has is one row of the store, and every row is on X once.
    on_x = Counter(p["text"] for p in fake.posts)
    assert max(on_x.values()) == 1
    assert sorted(on_x) == sorted(r.text for r in x_rows)
    assert len(fake.posts) == len(tweet_calls(fake)) - sum(
        c["status"] == 403 for c in tweet_calls(fake)
    )
    # No tick lost: every tick begun has all of its posts, and each finished run began one.
    per = Counter(r.tick for r in x_rows)
    assert set(per.values()) == {per_tick}, per
    assert len(per) >= completed
