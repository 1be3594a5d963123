"""Mastodon and Bluesky as publishers: against their fakes, with auth, limits and exactly-once."""

from __future__ import annotations

import pytest

from steward.posting import manual, store
from steward.posting.bluesky import BlueskyPublisher
from steward.posting.commands import render_posts
from steward.posting.mastodon import MastodonPublisher
from steward.posting.publishers import PublishError
from steward.posting.textcount import fits
from tests.clock import Clock
from tests.fakes.bluesky_api import FakeBluesky
from tests.fakes.mastodon_api import FakeMastodon
from tests.posting.helpers import OWNER_CHAT, outbox_rows, poster, rows


@pytest.fixture
def mastodon():
    with FakeMastodon(max_characters=600) as server:
        server.add_token("good-token")
        yield server


@pytest.fixture
def bluesky():
    with FakeBluesky() as server:
        server.add_account("alice.bsky.social", "abcd-efgh-ijkl-mnop")
        yield server


def fedi_env(mastodon, bluesky, **env: str) -> dict[str, str]:
    return {
        "MASTODON_API_URL": mastodon.url,
        "MASTODON_ACCESS_TOKEN": "good-token",
        "BLUESKY_HANDLE": "alice.bsky.social",
        "BLUESKY_APP_PASSWORD": "abcd-efgh-ijkl-mnop",
        "BLUESKY_API_URL": bluesky.url,
        **env,
    }


def test_a_tick_posts_once_to_mastodon_and_bluesky_and_posts_lists_their_links(
    engine, mastodon, bluesky
):
    clock = Clock()
    p = poster(engine, clock, **fedi_env(mastodon, bluesky))
    outcomes = p.scheduled_tick(clock())
    assert sorted(o.channel for o in outcomes) == ["bluesky", "mastodon"]
    assert all(o.state == "sent" for o in outcomes)
    assert len(mastodon.statuses) == 1 and len(bluesky.posts) == 1
    assert mastodon.statuses[0]["text"] == bluesky.posts[0]["text"]
    shown = render_posts(rows(engine), p.settings.tz, None, {})
    assert "https://fake.example/@alice/" in shown
    assert "https://bsky.app/profile/alice.bsky.social/post/" in shown


def test_a_retry_after_a_lost_answer_never_posts_twice(mastodon, bluesky):
    toot = MastodonPublisher(mastodon.url, "good-token")
    sky = BlueskyPublisher(bluesky.url, "alice.bsky.social", "abcd-efgh-ijkl-mnop")
    first = toot.publish("once only", "7")
    assert toot.publish("once only", "7") == first, "the Idempotency-Key returns the same status"
    sky.publish("once only", "7")
    with pytest.raises(PublishError) as again:
        sky.publish("once only", "7")
    assert again.value.duplicate, "the same record key is refused as existing"
    assert len(mastodon.statuses) == 1 and len(bluesky.posts) == 1


def test_a_post_left_pending_goes_out_once_on_each_network_after_a_crash(engine, mastodon, bluesky):
    clock = Clock()
    env = fedi_env(mastodon, bluesky)
    p = poster(engine, clock, **env)
    [draft] = manual.preview(p, 1)
    # The first attempt reached both networks, then the process died before marking them sent.
    for channel in ("mastodon", "bluesky"):
        with engine.begin() as conn:
            gone = ("gone:1", clock())
            post_id = store.record_pending(
                conn, text=draft, channel=channel, now=clock(), claim=gone
            )
        p.parts.publishers[channel].publish(draft, str(post_id))
    clock.advance(minutes=5)
    poster(engine, clock, **env).recover()
    assert len(mastodon.statuses) == 1 and len(bluesky.posts) == 1
    assert [r.state for r in rows(engine)] == ["sent", "sent"]


def test_each_network_keeps_its_own_length_rule():
    link = "https://example.com/" + "a" * 80
    assert fits("a" * 400 + " " + link, "mastodon")
    assert not fits("a" * 400, "bluesky") and fits("é" * 300, "bluesky")


def test_bluesky_links_are_facets_with_utf8_byte_offsets(bluesky):
    sky = BlueskyPublisher(bluesky.url, "alice.bsky.social", "abcd-efgh-ijkl-mnop")
    sky.publish("Café ☕ https://example.com/x and example.org", "3")
    [record] = bluesky.posts
    spans = [
        (f["index"]["byteStart"], f["index"]["byteEnd"], f["features"][0]["uri"])
        for f in record["facets"]
    ]
    raw = record["text"].encode()
    assert [raw[a:b].decode() for a, b, _ in spans] == ["https://example.com/x", "example.org"]
    assert spans[1][2] == "https://example.org"


def test_mastodon_reads_the_instance_limit_and_refuses_longer_texts_itself(mastodon):
    toot = MastodonPublisher(mastodon.url, "good-token")
    assert toot.limit() == 600
    with pytest.raises(PublishError) as too_long:
        toot.publish("a" * 601, "1")
    assert too_long.value.permanent and mastodon.statuses == []


def test_refused_credentials_pause_the_network_and_tell_the_owner_once(engine, mastodon, bluesky):
    clock = Clock()
    env = fedi_env(mastodon, bluesky, MASTODON_ACCESS_TOKEN="revoked", BLUESKY_APP_PASSWORD="nope")
    p = poster(engine, clock, **env)
    p.scheduled_tick(clock())
    clock.advance(minutes=60)
    p.scheduled_tick(clock())
    told = [r.text for r in outbox_rows(engine) if r.chat_id == OWNER_CHAT]
    assert len([t for t in told if "MASTODON_ACCESS_TOKEN" in t]) == 1
    assert len([t for t in told if "BLUESKY_APP_PASSWORD" in t]) == 1
    assert set(p.blocked()) == {"mastodon", "bluesky"}
    assert mastodon.statuses == [] and bluesky.posts == []


def test_an_expired_bluesky_session_is_renewed(bluesky):
    sky = BlueskyPublisher(bluesky.url, "alice.bsky.social", "abcd-efgh-ijkl-mnop")
    sky.publish("first", "1")
    bluesky.expire_sessions()
    sky.publish("second", "2")
    assert [p["text"] for p in bluesky.posts] == ["first", "second"]


def test_texts_are_made_to_fit_a_small_instances_own_limit(engine):
    # An instance that allows 40 characters, not Mastodon's default 500: the words make texts
    # of 30 to 80 characters, and only those that fit may be made.
    words = "owl,heron,wren,nightingale-of-the-long-valley,kingfisher-by-the-old-mill-race"
    with FakeMastodon(max_characters=40) as small:
        small.add_token("good-token")
        env = {"MASTODON_API_URL": small.url, "MASTODON_ACCESS_TOKEN": "good-token"}
        clock = Clock()
        p = poster(engine, clock, POST_TEMPLATE="{Word} and {word2} met at dawn.",
                   POST_WORDS=words, TWEETS_PER_TICK="3", **env)  # fmt: skip
        outcomes = p.scheduled_tick(clock())
        assert [o.state for o in outcomes] == ["sent"] * 3, outcomes
        assert all(len(s["text"]) <= 40 for s in small.statuses)
        assert len(small.statuses) == 3
