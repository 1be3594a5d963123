"""tweepy routed to X_API_URL (signed for the URL it reaches) and X's failures sorted into kinds."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest
import requests
import tweepy

from steward.posting.x_client import (
    DEFAULT_API_URL,
    XSession,
    make_client,
    make_oauth_handler,
    reroute,
)
from steward.posting.x_errors import Kind, classify


@pytest.fixture
def client(fake):
    client = make_client("ck", "cs", "42-token", "42-secret", fake.url)
    yield client
    client.session.close()


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def raised(call) -> BaseException:
    with pytest.raises(Exception) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://api.twitter.com/2/tweets", "http://127.0.0.1:9/2/tweets"),
        ("https://api.x.com/2/users/me?x=1", "http://127.0.0.1:9/2/users/me?x=1"),
        (
            "https://upload.twitter.com/1.1/media/upload.json",
            "http://127.0.0.1:9/1.1/media/upload.json",
        ),
        ("https://example.com/2/tweets", "https://example.com/2/tweets"),
    ],
)
def test_it_reroutes_x_hosts_only(url, expected):
    assert reroute(url, "http://127.0.0.1:9") == expected


def test_it_keeps_a_path_prefix_and_leaves_the_default_url_alone():
    assert reroute("https://api.twitter.com/2/tweets", "https://proxy.test/x") == (
        "https://proxy.test/x/2/tweets"
    )
    assert reroute("https://api.x.com/2/tweets", DEFAULT_API_URL) == "https://api.x.com/2/tweets"


def test_it_posts_through_the_fake_with_a_signature_the_fake_accepts(fake, client):
    response = client.create_tweet(text="routed", user_auth=True)
    assert fake.posts[0]["text"] == "routed" and fake.posts[0]["user_id"] == "42"
    assert response.data["id"] == fake.posts[0]["id"]
    assert client.get_me(user_auth=True).data.username == "alice"
    assert isinstance(client.session, XSession) and client.wait_on_rate_limit is False


def test_it_reads_the_home_timeline_through_the_fake(fake, client):
    first = fake.add_timeline_post("42", "first")
    fake.add_timeline_post("42", "second")
    page = client.get_home_timeline(since_id=first, max_results=5, user_auth=True)
    assert [t.text for t in page.data] == ["second"]


def test_it_runs_the_pin_flow_through_the_fake(fake):
    handler = make_oauth_handler("ck", "cs", fake.url)
    url = handler.get_authorization_url()
    assert url.startswith(f"{fake.url}/oauth/authorize?oauth_token=")
    token = handler.request_token["oauth_token"]
    fake.authorize(token, "42")
    access_token, access_secret = handler.get_access_token(fake.pin_for(token))
    client = make_client("ck", "cs", access_token, access_secret, fake.url)
    try:
        assert client.get_me(user_auth=True).data.id == 42
    finally:
        client.session.close()


def test_it_classifies_a_duplicate_as_permanent(client):
    client.create_tweet(text="twice", user_auth=True)
    error = classify(raised(lambda: client.create_tweet(text="twice", user_auth=True)))
    assert error.kind is Kind.DUPLICATE and error.permanent and error.status == 403


def test_it_classifies_revoked_and_wrong_credentials_as_auth(fake, client):
    fake.revoke("42-token")
    error = classify(raised(lambda: client.get_me(user_auth=True)))
    assert error.kind is Kind.AUTH and error.permanent and error.status == 401
    handler = make_oauth_handler("ck", "wrong", fake.url)
    error = classify(raised(handler.get_authorization_url))
    assert error.kind is Kind.AUTH and error.status == 401


def test_it_classifies_a_forbidden_request_that_is_no_duplicate_as_auth(fake, client):
    # X answers 403 when the app may not write (read-only permissions) or the account is locked.
    fake.fail_next("/2/tweets", 403)
    error = classify(raised(lambda: client.create_tweet(text="denied", user_auth=True)))
    assert error.kind is Kind.AUTH and error.permanent and error.status == 403


def test_it_reads_the_reset_time_of_a_rate_limit(fake, client):
    fake.rate_limit("/2/tweets", reset_in_seconds=300)
    error = classify(raised(lambda: client.create_tweet(text="later", user_auth=True)))
    assert error.kind is Kind.RATE_LIMITED and not error.permanent
    expected = dt.datetime.fromtimestamp(int(time.time() + 300), dt.UTC)
    assert abs((error.retry_at - expected).total_seconds()) <= 2
    assert error.retry_at.tzinfo is not None


def test_it_classifies_server_errors_and_too_long_texts(fake, client):
    fake.fail_next("/2/tweets", 503)
    error = classify(raised(lambda: client.create_tweet(text="soon", user_auth=True)))
    assert error.kind is Kind.TRANSIENT and not error.permanent and error.status == 503
    error = classify(raised(lambda: client.create_tweet(text="x" * 281, user_auth=True)))
    assert error.kind is Kind.REJECTED and error.permanent and error.status == 400


def test_it_classifies_a_refused_connection_as_transient():
    client = make_client("ck", "cs", "t", "s", refused_url())
    try:
        exc = raised(lambda: client.get_me(user_auth=True))
    finally:
        client.session.close()
    error = classify(exc)
    assert error.kind is Kind.TRANSIENT and error.status is None
    assert error.detail == "connection refused"
    handler = make_oauth_handler("ck", "cs", refused_url())
    wrapped = raised(handler.get_authorization_url)
    assert type(wrapped) is tweepy.TweepyException  # tweepy hides the cause: classify unwraps it
    assert classify(wrapped).detail == "connection refused"


def test_it_times_out_instead_of_waiting_forever_on_a_silent_server():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel and never answered
        client = make_client("ck", "cs", "t", "s", f"http://127.0.0.1:{silent.getsockname()[1]}")
        client.session.timeout = 0.3
        try:
            exc = raised(lambda: client.get_me(user_auth=True))
        finally:
            client.session.close()
    assert isinstance(exc, requests.Timeout)
    error = classify(exc)
    assert error.kind is Kind.TRANSIENT and error.detail == "timed out"
