"""A post is published once through a deploy overlap, and never stored as sent unless it went out.

The new worker starts while the old one is still sending: each post carries an in-flight claim
with a lease, so the new worker's recovery leaves the old worker's post alone, and a "duplicate"
answer counts as proof only after an attempt of ours.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from steward import db
from steward.posting import manual, store
from steward.posting.inflight import LEASE
from tests.clock import Clock
from tests.fakes.x_api import FakeX
from tests.posting.helpers import poster, rows, x_env


class SlowX(FakeX):
    """The fake X taking 50 to 300 ms per new post, so that of two requests for one text either
    may land first; `sending` is set once a post request is in hand."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sending = threading.Event()
        self.rng = random.Random(15)

    def handle(self, method, target, headers, body):
        if method == "POST" and target.startswith("/2/tweets"):
            self.sending.set()
            time.sleep(self.rng.uniform(0.05, 0.3))
        return super().handle(method, target, headers, body)


@pytest.fixture
def slow_x():
    with SlowX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-token", "42-secret")
        yield server


@pytest.fixture
def pg_engine(pg_url):
    eng = db.make_engine(pg_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


def test_it_publishes_once_when_a_new_worker_starts_while_the_old_one_is_sending(pg_engine, slow_x):
    overlaps = 20
    clock = Clock()
    env = x_env(slow_x, POST_WORDS="owl,fox,elk,yak,emu,gnu,bat,cat,dog,eel,ant,bee,cow")
    old = poster(pg_engine, clock, **env)
    for i in range(overlaps):
        slow_x.sending.clear()
        at = clock() + i * LEASE
        tick = threading.Thread(target=old.run_tick, args=(at,), kwargs={"want": 1})
        tick.start()
        assert slow_x.sending.wait(10), "the old worker never began to post"
        poster(pg_engine, clock, **env).recover()  # the new worker's start, mid-request
        tick.join(30)
    texts = Counter(p["text"] for p in slow_x.posts)
    assert len(slow_x.posts) == overlaps, f"{len(slow_x.posts) - overlaps} duplicate(s)"
    assert max(texts.values()) == 1
    assert [r.state for r in rows(pg_engine)] == ["sent"] * overlaps


def test_a_post_held_by_a_live_worker_is_left_to_it_until_its_lease_ends(engine, fake):
    clock = Clock()
    with engine.begin() as conn:
        claim = ("old-worker", clock() + LEASE)
        store.record_pending(conn, text="in flight", channel="x", now=clock(), claim=claim)
    poster(engine, clock, **x_env(fake)).recover()
    assert fake.posts == [], "the old worker may be sending it right now"
    clock.advance(seconds=LEASE.total_seconds() + 1)  # the old worker is gone
    poster(engine, clock, **x_env(fake)).recover()
    assert [p["text"] for p in fake.posts] == ["in flight"]
    assert [r.state for r in rows(engine)] == ["sent"]


def test_a_text_x_had_before_our_first_attempt_is_never_stored_as_sent(engine, fake):
    clock = Clock()
    env = x_env(fake, POST_TEMPLATE="The only post: {word}", POST_WORDS="owl")
    fake.add_timeline_post("42", "The only post: owl")  # posted by hand on X long ago
    p = poster(engine, clock, **env)
    p.scheduled_tick(clock())
    clock.advance(minutes=60)
    poster(engine, clock, **env).scheduled_tick(clock())  # the next tick's recovery
    assert fake.posts == []
    assert [r.state for r in rows(engine)] == ["failed"]
    assert p.month_count() == 0, "a post that never went out does not count toward the cap"


def test_a_manual_post_x_refuses_as_a_duplicate_is_reported_and_not_stored_as_sent(engine, fake):
    clock = Clock()
    env = x_env(fake)
    fake.add_timeline_post("42", "said before")
    p = poster(engine, clock, **env)
    [outcome] = manual.publish_now(p, "said before")
    assert outcome["state"] == "failed" and "already has" in outcome["error"]
    poster(engine, clock, **env).recover()
    assert [r.state for r in rows(engine)] == ["failed"]


def test_a_post_held_by_a_dead_process_of_this_host_goes_out_at_once(engine, fake):
    clock = Clock()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    with engine.begin() as conn:  # `bot.py post` from cron, killed mid-post a minute ago
        claim = (f"{socket.gethostname()}:{dead}:1", clock() + LEASE)
        store.record_pending(conn, text="orphan", channel="x", now=clock(), claim=claim)
    poster(engine, clock, **x_env(fake)).recover()
    assert [p["text"] for p in fake.posts] == ["orphan"]


def test_a_503_is_retried_within_the_tick_with_back_off_and_posted_once(engine, fake):
    clock = Clock()
    fake.fail_next("/2/tweets", 503, count=2)
    p = poster(engine, clock, **x_env(fake))
    p.retry_delays = (0.05, 0.1, 0.2)  # seconds here; minutes' worth in production
    [outcome] = p.scheduled_tick(clock())
    assert outcome.state == "sent" and len(fake.posts) == 1
    assert [c["path"] for c in fake.calls].count("/2/tweets") == 3
    assert [r.attempts for r in rows(engine)] == [3]
