"""The post store on SQLite and Postgres: unique texts per channel, states, counts, values."""

from __future__ import annotations

import datetime as dt
import threading
import time

import sqlalchemy as sa

from steward.posting import store

NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)
TICK = dt.datetime(2026, 3, 15, 11, 30, tzinfo=dt.UTC)


def test_it_hashes_texts_a_reader_would_call_the_same_alike():
    assert store.text_hash("Hello  World") == store.text_hash(" hello world\n")
    assert store.text_hash("ﬁne") == store.text_hash("FINE")  # NFKC folds the ligature
    assert store.text_hash("hello world") != store.text_hash("hello, world")


def test_it_records_a_text_once_per_channel(engine):
    with engine.begin() as conn:
        first = store.record_pending(conn, text="Owl at dawn", channel="x", now=NOW, tick=TICK)
        again = store.record_pending(conn, text="owl  at DAWN", channel="x", now=NOW)
        other = store.record_pending(conn, text="Owl at dawn", channel="telegram", now=NOW)
    assert isinstance(first, int) and isinstance(other, int)
    assert again is None
    with engine.connect() as conn:
        [post, _] = store.pending(conn)
    assert (post.id, post.text, post.channel, post.state, post.tick) == (
        first,
        "Owl at dawn",
        "x",
        "pending",
        TICK,
    )
    assert post.created_at == NOW


def test_it_tells_which_texts_were_used_on_which_channels(engine):
    with engine.begin() as conn:
        store.record_pending(conn, text="on x", channel="x", now=NOW)
        store.record_pending(conn, text="previewed", channel="dry-run", now=NOW)
    hashes = [store.text_hash(t) for t in ("on x", "previewed", "never")]
    with engine.connect() as conn:
        assert store.used_hashes(conn, hashes) == set(hashes[:2])
        assert store.used_hashes(conn, hashes, ["x", "telegram"]) == {hashes[0]}
        assert store.is_used(conn, store.text_hash("ON X"))
        assert not store.is_used(conn, hashes[1], channels=["telegram"])
        assert store.used_hashes(conn, []) == set()


def test_it_moves_a_pending_post_to_sent_or_failed_once(engine):
    with engine.begin() as conn:
        sent = store.record_pending(conn, text="one", channel="x", now=NOW)
        failed = store.record_pending(conn, text="two", channel="x", now=NOW)
        skipped = store.record_pending(conn, text="three", channel="x", now=NOW)
        later = NOW + dt.timedelta(seconds=3)
        assert store.mark_sent(conn, sent, now=later, remote_id="42", url="https://x.com/i/42")
        assert not store.mark_sent(conn, sent, now=later, remote_id="43")
        assert store.mark_failed(conn, failed, error="X said 403: duplicate content")
        assert not store.mark_sent(conn, failed, now=later)
        assert store.mark_skipped(conn, skipped, reason="monthly limit of 1 reached")
    with engine.connect() as conn:
        by_text = {p.text: p for p in store.recent(conn)}
        assert store.pending(conn) == []
    assert (by_text["one"].state, by_text["one"].remote_id, by_text["one"].sent_at) == (
        "sent",
        "42",
        later,
    )
    assert by_text["one"].url == "https://x.com/i/42"
    assert by_text["two"].state == "failed"
    assert by_text["two"].error == "X said 403: duplicate content"
    assert by_text["three"].state == "skipped"


def test_it_counts_this_months_posts_on_a_channel(engine):
    month = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        store.record_pending(conn, text="last month", channel="x", now=month - dt.timedelta(1))
        a = store.record_pending(conn, text="sent", channel="x", now=NOW)
        store.mark_sent(conn, a, now=NOW)
        store.record_pending(conn, text="on its way", channel="x", now=NOW)
        b = store.record_pending(conn, text="failed", channel="x", now=NOW)
        store.mark_failed(conn, b, error="boom")
        store.record_pending(conn, text="elsewhere", channel="telegram", now=NOW)
    with engine.connect() as conn:
        assert store.month_count(conn, month) == 2
        assert store.month_count(conn, month, channel="telegram") == 1


def test_it_lists_recent_posts_newest_first_and_pending_oldest_first(engine):
    with engine.begin() as conn:
        ids = [store.record_pending(conn, text=f"post {i}", channel="x", now=NOW) for i in range(5)]
        store.mark_sent(conn, ids[0], now=NOW)
    with engine.connect() as conn:
        assert [p.id for p in store.recent(conn, limit=3)] == ids[:1:-1][:3]
        assert [p.id for p in store.pending(conn)] == ids[1:]
        assert [p.id for p in store.pending(conn, channel="telegram")] == []


def test_it_keeps_small_values_across_restarts(engine):
    with engine.begin() as conn:
        assert store.load_value(conn, "posting.test") is None
        store.save_value(conn, "posting.test", {"since_id": "5", "words": ["owl"]}, NOW)
        store.save_value(conn, "posting.test", {"since_id": "9", "words": []}, NOW)
    with engine.connect() as conn:
        assert store.load_value(conn, "posting.test") == {"since_id": "9", "words": []}


def test_it_saves_a_first_value_from_two_workers_at_once(engine):
    # Two workers write the same new key: the second one's write waits on the first one's
    # uncommitted row. Update-then-insert then found nothing to update and its insert broke
    # the primary key on Postgres (IntegrityError); one upsert waits and overwrites.
    first_wrote, errors = threading.Event(), []

    def first() -> None:
        with engine.begin() as conn:
            store.save_value(conn, "posting.race", {"by": "first"}, NOW)
            first_wrote.set()
            _wait_until_a_writer_waits(engine)

    def second() -> None:
        first_wrote.wait(10)
        try:
            with engine.begin() as conn:
                store.save_value(conn, "posting.race", {"by": "second"}, NOW)
        except Exception as exc:  # the failure the test is about, reported below
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with engine.connect() as conn:
        assert store.load_value(conn, "posting.race") == {"by": "second"}


def _wait_until_a_writer_waits(engine, timeout: float = 10.0) -> None:
    """Until another session's write to the state table waits on a lock (Postgres); a moment
    on SQLite, which cannot tell."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.2)
        return
    deadline = time.monotonic() + timeout
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO state%'"
    )
    with engine.connect() as watcher:
        while time.monotonic() < deadline and not watcher.scalar(query):
            time.sleep(0.02)
            watcher.rollback()


def test_it_migrates_to_the_same_table_the_store_declares(engine):
    inspector = sa.inspect(engine)
    columns = {c["name"] for c in inspector.get_columns("posts")}
    assert columns == {c.name for c in store.posts.columns}
    uniques = [u["column_names"] for u in inspector.get_unique_constraints("posts")]
    assert ["bot", "text_hash", "channel"] in uniques
    indexes = {i["name"] for i in inspector.get_indexes("posts")}
    assert {"ix_posts_state_id", "ix_posts_bot_channel_created_at"} <= indexes
