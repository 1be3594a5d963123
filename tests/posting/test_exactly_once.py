"""Each post goes out exactly once, whatever moment the process dies at.

First each crash point on its own (the store left as a kill there leaves it), then
`python bot.py post` and the long-running worker `python bot.py` killed with SIGKILL at random
moments over many runs against the fake X.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from steward import db
from steward.posting import store
from steward.posting.job import TICK_JOB, TICK_KEY
from tests.clock import Clock
from tests.fakes.x_api import FakeX
from tests.posting.helpers import bot, outbox_rows, poster, rows, tweet_calls, x_env
from tests.worker_process import ROOT, WorkerProcess, clean_env


class SlowX(FakeX):
    """The fake X taking a moment per post, so that kills land inside ticks."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._busy = 0
        self._quiet = threading.Condition()

    def handle(self, method, target, headers, body):
        self._count(+1)
        try:
            if method == "POST" and target.startswith("/2/tweets"):
                time.sleep(0.05)
            return super().handle(method, target, headers, body)
        finally:
            self._count(-1)

    def _count(self, step: int) -> None:
        with self._quiet:
            self._busy += step
            self._quiet.notify_all()

    def settle(self, quiet: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until no request has been in hand for `quiet` seconds: a killed client's last
        request still reaches X (its bytes are in the socket), and may post after the kill."""
        deadline = time.monotonic() + timeout
        with self._quiet:
            while time.monotonic() < deadline:
                idle = self._quiet.wait_for(lambda: self._busy == 0, deadline - time.monotonic())
                if idle and not self._quiet.wait(quiet) and self._busy == 0:
                    return  # idle, and nothing started or ended for `quiet` seconds
        raise AssertionError("the fake X kept serving requests")


@pytest.fixture
def fake():
    with SlowX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-token", "42-secret")
        yield server


def left_pending(engine, clock, text: str, channel: str = "x") -> int:
    """A post a killed worker recorded and began to publish (its lease has run out)."""
    gone = ("gone:1", clock() - dt.timedelta(seconds=1))
    with engine.begin() as conn:
        return store.record_pending(conn, text=text, channel=channel, now=clock(), claim=gone)


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


def claimed_by_the_scheduler(engine, at: dt.datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            db.job_claims.insert().values(
                job=TICK_JOB, scheduled_at=at, claimed_by="gone:1", claimed_at=at
            )
        )


def test_a_tick_claimed_but_killed_before_it_began_is_run_at_start(engine, fake):
    clock = Clock()
    env = x_env(fake, TWEETS_PER_TICK="2")
    poster(engine, clock, **env).scheduled_tick(clock())
    clock.advance(minutes=30)
    claimed_by_the_scheduler(engine, clock())  # the scheduler's claim, then the kill
    poster(engine, clock, **env).recover()
    assert [r.tick for r in rows(engine)][2:] == [clock(), clock()]
    poster(engine, clock, **env).recover()
    assert len(fake.posts) == 4, "a tick run at start is not run again"


def test_a_tick_skipped_while_paused_is_not_run_after_the_resume(engine, fake):
    clock = Clock()
    p = poster(engine, clock, **x_env(fake))
    p.set_paused("@owner")
    claimed_by_the_scheduler(engine, clock())
    assert p.scheduled_tick(clock()) == []
    p.set_paused(None)
    poster(engine, clock, **x_env(fake)).recover()
    assert fake.posts == []


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


def x_store(engine) -> tuple[list[store.Post], dict | None, set[dt.datetime]]:
    """The X rows, the last tick begun, and the posting ticks the scheduler claimed."""
    with engine.connect() as conn:
        last = store.load_value(conn, TICK_KEY)
        query = sa.select(db.job_claims.c.scheduled_at).where(db.job_claims.c.job == TICK_JOB)
        claimed = set(conn.scalars(query))
    return rows(engine, "x"), last, claimed


def begun(posts: list[store.Post], last: dict | None) -> set[dt.datetime]:
    """The ticks that made their first write: the last one begun, and every one with a post."""
    ticks = {p.tick for p in posts}
    return ticks | ({dt.datetime.fromisoformat(last["at"])} if last else set())


def wait_until(predicate, worker: WorkerProcess, timeout: float = 30.0, step: float = 0.005):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert worker.proc.poll() is None, worker.output
        assert time.monotonic() < deadline, worker.output
        time.sleep(step)


def test_the_worker_killed_at_random_moments_neither_loses_nor_repeats_a_post(tmp_path, fake):
    """`python bot.py` SIGKILLed again and again, and started again on the same store.

    Each start sets another POST_INTERVAL, which the scheduler takes for a new schedule that
    ticks at once: a tick per start, without waiting out the least interval (a minute). Most
    kills come a random moment after the run's first request to X, so they land while posts go
    out; the others a random moment after the start (start-up, recovery, the tick's claim).
    """
    per_tick, trials = 3, 14
    # A post is 0.15 s on its way to X, and X answers 0.2 s after taking it: a kill in the first
    # leaves a pending post X has not got, in the second one X has (the dangerous window).
    fake.take_delay, fake.answer_delay = 0.15, 0.2
    url = f"sqlite:///{tmp_path / 'steward.sqlite'}"
    env = clean_env(DATABASE_URL=url, TWEETS_PER_TICK=str(per_tick), **x_env(fake))
    rng = random.Random(20261202)
    in_window: set[str] = set()  # pending in the store at a kill, and already on X
    before_x: set[str] = set()  # pending in the store at a kill, not on X
    cut_before_begin: set[dt.datetime] = set()  # claimed, killed before the tick's first write
    engine = db.make_engine(url)
    try:
        for trial in range(trials):
            env["POST_INTERVAL"] = str(trial + 1)
            seen = len(tweet_calls(fake))
            with WorkerProcess(env, tmp_path) as worker:
                # The first run is not killed before it posts: a kill while it creates the
                # SQLite schema is the migration's concern, not posting's.
                if trial == 0 or rng.random() < 0.75:
                    wait_until(lambda seen=seen: len(tweet_calls(fake)) > seen, worker)
                    time.sleep(rng.uniform(0, 1.5))
                else:
                    time.sleep(rng.uniform(0.3, 2.5))
                worker.kill()
            fake.settle()
            posts, last, claimed = x_store(engine)
            on_x = {p["text"] for p in fake.posts}
            for post in posts:
                if post.state == "pending":
                    (in_window if post.text in on_x else before_x).add(post.text)
            # The scheduler claims a tick just before posting writes it down: a kill between
            # the two leaves a tick only its claim knows of (the next start must run it).
            cut_before_begin |= claimed - begun(posts, last)

        env["POST_INTERVAL"] = str(trials + 1)
        with WorkerProcess(env, tmp_path) as worker:

            def its_tick_is_done() -> bool:
                mine = f":{worker.proc.pid}"
                with engine.connect() as conn:
                    at = conn.scalar(
                        sa.select(db.job_claims.c.scheduled_at).where(
                            db.job_claims.c.job == TICK_JOB,
                            db.job_claims.c.claimed_by.endswith(mine),
                        )
                    )
                    last = store.load_value(conn, TICK_KEY) or {}
                    waiting = store.pending(conn)
                done = at is not None and last.get("done") and begun([], last) == {at}
                return bool(done) and not waiting

            wait_until(its_tick_is_done, worker, timeout=60, step=0.1)
            assert worker.terminate()[0] == 0, worker.output
        fake.settle()
        posts, last, claimed = x_store(engine)
    finally:
        engine.dispose()

    assert [p for p in posts if p.state != "sent"] == []
    # Exactly once: every post X has is a row the store marked sent, and X has each once.
    on_x = Counter(p["text"] for p in fake.posts)
    assert [text for text, n in on_x.items() if n > 1] == []
    assert sorted(on_x) == sorted(p.text for p in posts)
    # No tick lost: every tick the scheduler claimed made all its posts and no more. (A start
    # killed before its claim owes no tick: here each start's tick is due only on that start's
    # own new schedule.)
    per = Counter(p.tick for p in posts)
    assert set(per.values()) == {per_tick}, per
    assert set(per) == claimed, f"{len(cut_before_begin)} kill(s) came after a tick's claim"
    assert len(fake.posts) == per_tick * len(claimed)
    assert len(claimed) > trials // 3, "starts made ticks"
    # The kills reached both sides of X taking a post: a pending post X had not got (the retry
    # posts it), and the dangerous window, a post X had that the store still called pending (the
    # retry meets X's duplicate answer instead of posting it again).
    assert before_x, "no kill left a post pending before X took it"
    assert len(in_window) >= 2, (in_window, before_x)
    duplicates = sum(c["status"] == 403 for c in tweet_calls(fake))
    assert duplicates >= len(in_window)
