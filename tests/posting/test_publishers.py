"""Publishers: one method each, X through real tweepy on the fake X, Telegram through the outbox."""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest
import sqlalchemy as sa

from steward import db
from steward.posting.bluesky import BlueskyPublisher
from steward.posting.mastodon import MastodonPublisher
from steward.posting.publishers import (
    DryRunPublisher,
    Published,
    Publisher,
    PublishError,
    TelegramChannelPublisher,
    XPublisher,
)
from steward.posting.store import CHANNELS
from steward.posting.x_client import make_client
from steward.telegram import store as telegram_store
from steward.telegram.outbox import Outbox
from tests.fakes.x_api import FakeX


@pytest.fixture
def x(fake):
    client = make_client("ck", "cs", "42-token", "42-secret", fake.url)
    yield XPublisher(client)
    client.session.close()


@pytest.fixture
def outbox(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    tables = [t for t in db.metadata.sorted_tables if t.name.startswith("outbox")]
    db.metadata.create_all(engine, tables=tables)
    yield Outbox(engine, "1000")
    engine.dispose()


def failure(publisher: Publisher, text: str) -> PublishError:
    with pytest.raises(PublishError) as info:
        publisher.publish(text, "1")
    return info.value


def calls_to(fake: FakeX, path: str) -> int:
    return sum(1 for call in fake.calls if call["path"] == path)


def test_every_publisher_is_named_after_a_store_channel(x, outbox):
    publishers = [
        x,
        TelegramChannelPublisher(outbox, "@channel"),
        DryRunPublisher(),
        MastodonPublisher("https://mastodon.example", "token"),
        BlueskyPublisher("https://bsky.example", "me.bsky.social", "app-pass"),
    ]
    assert sorted(p.name for p in publishers) == sorted(CHANNELS)


def test_x_publisher_posts_and_links_to_the_post(fake, x):
    first = x.publish("first post", "1")
    second = x.publish("second post", "2")
    assert [p["text"] for p in fake.posts] == ["first post", "second post"]
    assert first == Published(
        fake.posts[0]["id"], f"https://x.com/alice/status/{fake.posts[0]['id']}"
    )
    assert second.remote_id == fake.posts[1]["id"]
    assert calls_to(fake, "/2/users/me") == 1  # the account name is looked up once


def test_x_publisher_still_succeeds_when_the_account_name_cannot_be_looked_up(fake, x):
    fake.fail_next("/2/users/me", 503)
    published = x.publish("out anyway", "1")
    assert published.url == f"https://x.com/i/status/{published.remote_id}"
    assert x.publish("later", "2").url.startswith("https://x.com/alice/status/")


def test_x_publisher_reports_a_duplicate_as_permanent(x):
    x.publish("same words", "1")
    error = failure(x, "same words")
    assert error.permanent and error.duplicate and not error.auth


def test_x_publisher_reports_revoked_credentials(fake, x):
    fake.revoke("42-token")
    error = failure(x, "hello")
    assert error.permanent and error.auth and not error.duplicate
    assert "42-token" not in str(error) and "42-secret" not in str(error)


def test_x_publisher_reports_when_to_retry_after_a_rate_limit(fake, x):
    fake.rate_limit("/2/tweets", reset_in_seconds=600)
    error = failure(x, "hello")
    assert not error.permanent and error.retry_at is not None
    expected = dt.datetime.fromtimestamp(int(time.time() + 600), dt.UTC)
    assert abs((error.retry_at - expected).total_seconds()) <= 2
    assert fake.posts == []


def test_x_publisher_reports_server_errors_as_transient(fake, x):
    fake.fail_next("/2/tweets", 502)
    error = failure(x, "hello")
    assert not error.permanent and error.retry_at is None
    assert x.publish("hello", "1").remote_id == fake.posts[0]["id"]


def test_x_publisher_refuses_a_text_over_x_limit_without_asking_x(fake, x):
    error = failure(x, "日" * 141)  # 282 as X counts: CJK characters weigh 2
    assert error.permanent and "282" in error.reason
    assert calls_to(fake, "/2/tweets") == 0


def test_telegram_publisher_queues_the_escaped_text_once_per_key(outbox):
    publisher = TelegramChannelPublisher(outbox, "@channel")
    first = publisher.publish("a < b & <b>c</b>", "7")
    again = publisher.publish("a < b & <b>c</b>", "7")
    assert first == again and first.url is None
    with outbox.engine.connect() as conn:
        rows = conn.execute(sa.select(telegram_store.outbox)).all()
    assert [(r.key, r.chat_id, r.text) for r in rows] == [
        ("post:7", "@channel", "a &lt; b &amp; &lt;b&gt;c&lt;/b&gt;")
    ]
    assert first.remote_id == f"outbox:{rows[0].id}"


def test_telegram_publisher_refuses_a_text_over_telegram_limit(outbox):
    error = failure(TelegramChannelPublisher(outbox, "@channel"), "x" * 4097)
    assert error.permanent and "4097" in error.reason


def test_telegram_publisher_reports_a_store_failure_as_transient(outbox):
    outbox.engine.dispose()
    with outbox.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE outbox"))
    error = failure(TelegramChannelPublisher(outbox, "@channel"), "hello")
    assert not error.permanent


def test_dry_run_publisher_logs_the_text_and_posts_nothing(caplog):
    with caplog.at_level(logging.INFO):
        published = DryRunPublisher().publish("only a rehearsal", "1")
    assert published == Published(None, None)
    assert "would post: only a rehearsal" in caplog.text
