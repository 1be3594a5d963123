"""The fake X answers like X: signatures checked, X's error bodies and headers, the PIN flow."""

from __future__ import annotations

import time

import pytest
import requests
from requests_oauthlib import OAuth1, OAuth1Session

from tests.fakes.x_api import DUPLICATE, FakeX, weighted_length


@pytest.fixture
def fake():
    with FakeX(consumer_key="ck", consumer_secret="cs") as server:
        server.add_user("42", "alice", "42-token", "42-secret")
        yield server


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


def signed(token: str = "42-token", secret: str = "42-secret", app_secret: str = "cs") -> OAuth1:
    return OAuth1("ck", app_secret, token, secret)


def test_it_posts_with_a_correct_signature_and_records_the_post(fake, http):
    answer = http.post(f"{fake.url}/2/tweets", json={"text": "hello"}, auth=signed())
    assert answer.status_code == 201
    assert answer.json()["data"]["text"] == "hello"
    assert [(p["text"], p["user_id"]) for p in fake.posts] == [("hello", "42")]
    assert fake.calls[-1]["path"] == "/2/tweets" and fake.calls[-1]["status"] == 201


@pytest.mark.parametrize(
    "auth",
    [signed(app_secret="wrong"), signed(secret="wrong"), signed(token="nobody"), None],
    ids=["app-secret", "token-secret", "unknown-token", "unsigned"],
)
def test_it_answers_401_with_x_body_to_a_bad_signature(fake, http, auth):
    answer = http.post(f"{fake.url}/2/tweets", json={"text": "hello"}, auth=auth)
    assert answer.status_code == 401
    assert answer.json() == {
        "title": "Unauthorized",
        "type": "about:blank",
        "status": 401,
        "detail": "Unauthorized",
    }
    assert fake.posts == []


def test_it_refuses_a_replayed_request(fake, http):
    prepared = http.prepare_request(
        requests.Request("GET", f"{fake.url}/2/users/me", auth=signed())
    )
    assert http.send(prepared).status_code == 200
    assert http.send(prepared).status_code == 401


def test_it_refuses_a_revoked_token(fake, http):
    fake.revoke("42-token")
    assert http.get(f"{fake.url}/2/users/me", auth=signed()).status_code == 401


def test_it_answers_users_me(fake, http):
    answer = http.get(f"{fake.url}/2/users/me", auth=signed())
    assert answer.json() == {"data": {"id": "42", "name": "alice", "username": "alice"}}


def test_it_refuses_the_same_text_twice_with_x_duplicate_body(fake, http):
    http.post(f"{fake.url}/2/tweets", json={"text": "once"}, auth=signed())
    again = http.post(f"{fake.url}/2/tweets", json={"text": "once"}, auth=signed())
    assert again.status_code == 403
    assert again.json() == {
        "detail": DUPLICATE,
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
    }
    fake.add_user("7", "bob", "7-token", "7-secret")
    other = http.post(
        f"{fake.url}/2/tweets", json={"text": "once"}, auth=signed("7-token", "7-secret")
    )
    assert other.status_code == 201


def test_it_counts_x_weighted_length():
    assert weighted_length("a" * 280) == 280
    assert weighted_length("日" * 140) == 280  # CJK weighs 2
    assert weighted_length("see https://example.com/" + "x" * 300) == 4 + 23
    assert weighted_length("\U0001f468\u200d\U0001f469\u200d\U0001f467") <= 6


def test_it_refuses_a_text_over_280_weighted_characters(fake, http):
    too_long = http.post(f"{fake.url}/2/tweets", json={"text": "日" * 141}, auth=signed())
    assert too_long.status_code == 400
    ok = http.post(f"{fake.url}/2/tweets", json={"text": "日" * 140}, auth=signed())
    assert ok.status_code == 201


def test_it_answers_the_home_timeline_newest_first_after_since_id(fake, http):
    ids = [fake.add_timeline_post("42", f"post {i}") for i in range(8)]
    url = f"{fake.url}/2/users/42/timelines/reverse_chronological"
    page = http.get(url, params={"since_id": ids[1], "max_results": 5}, auth=signed()).json()
    assert [t["text"] for t in page["data"]] == ["post 7", "post 6", "post 5", "post 4", "post 3"]
    assert page["meta"]["newest_id"] == ids[7] and page["meta"]["oldest_id"] == ids[3]
    assert page["meta"]["result_count"] == 5
    rest = http.get(
        url,
        params={
            "since_id": ids[1],
            "max_results": 5,
            "pagination_token": page["meta"]["next_token"],
        },
        auth=signed(),
    ).json()
    assert [t["text"] for t in rest["data"]] == ["post 2"]


def test_it_leaves_out_data_when_the_timeline_has_nothing_new(fake, http):
    newest = fake.add_timeline_post("42", "old")
    url = f"{fake.url}/2/users/42/timelines/reverse_chronological"
    answer = http.get(url, params={"since_id": newest}, auth=signed()).json()
    assert answer == {"meta": {"result_count": 0}}


def test_it_refuses_max_results_out_of_range_and_another_users_timeline(fake, http):
    url = f"{fake.url}/2/users/42/timelines/reverse_chronological"
    assert http.get(url, params={"max_results": 0}, auth=signed()).status_code == 400
    assert http.get(url, params={"max_results": 101}, auth=signed()).status_code == 400
    assert http.get(url, params={"max_results": 1}, auth=signed()).status_code == 200
    fake.add_user("7", "bob", "7-token", "7-secret")
    assert http.get(url, auth=signed("7-token", "7-secret")).status_code == 403


def test_it_answers_429_with_x_rate_limit_headers(fake, http):
    fake.rate_limit("/2/tweets", reset_in_seconds=120)
    limited = http.post(f"{fake.url}/2/tweets", json={"text": "a"}, auth=signed())
    assert limited.status_code == 429
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert abs(int(limited.headers["x-rate-limit-reset"]) - (time.time() + 120)) < 5
    assert http.post(f"{fake.url}/2/tweets", json={"text": "a"}, auth=signed()).status_code == 201


def test_it_fails_the_next_requests_on_a_path_as_told(fake, http):
    fake.fail_next("/2/users/me", 503, count=2)
    statuses = [http.get(f"{fake.url}/2/users/me", auth=signed()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_it_runs_the_pin_flow_with_signed_requests(fake):
    with OAuth1Session("ck", client_secret="cs", callback_uri="oob") as session:
        request_token = session.fetch_request_token(f"{fake.url}/oauth/request_token")
    token = request_token["oauth_token"]
    page = requests.get(f"{fake.url}/oauth/authorize", params={"oauth_token": token}, timeout=5)
    assert fake.pin_for(token) in page.text and "@alice" in page.text
    with OAuth1Session(
        "ck",
        client_secret="cs",
        resource_owner_key=token,
        resource_owner_secret=request_token["oauth_token_secret"],
        verifier=fake.pin_for(token),
    ) as session:
        access = session.fetch_access_token(f"{fake.url}/oauth/access_token")
    assert access["user_id"] == "42" and access["screen_name"] == "alice"
    assert access["oauth_token"].startswith("42-")
    me = requests.get(
        f"{fake.url}/2/users/me",
        auth=OAuth1("ck", "cs", access["oauth_token"], access["oauth_token_secret"]),
        timeout=5,
    )
    assert me.json()["data"]["username"] == "alice"


def test_it_refuses_a_wrong_pin_and_a_used_request_token(fake):
    with OAuth1Session("ck", client_secret="cs", callback_uri="oob") as session:
        request_token = session.fetch_request_token(f"{fake.url}/oauth/request_token")
    token, token_secret = request_token["oauth_token"], request_token["oauth_token_secret"]
    pin = fake.authorize(token, "42")

    def exchange(verifier: str) -> requests.Response:
        auth = OAuth1("ck", "cs", token, token_secret, verifier=verifier)
        return requests.post(f"{fake.url}/oauth/access_token", auth=auth, timeout=5)

    wrong = exchange("0000000" if pin != "0000000" else "1111111")
    assert wrong.status_code == 401
    assert wrong.json() == {"errors": [{"code": 32, "message": "Could not authenticate you."}]}
    assert exchange(pin).status_code == 200
    assert exchange(pin).status_code == 401  # a request token works once


def test_it_refuses_request_tokens_to_an_unknown_or_revoked_app(fake):
    with OAuth1Session("other", client_secret="cs", callback_uri="oob") as session:
        answer = session.post(f"{fake.url}/oauth/request_token")
    assert answer.status_code == 401
    fake.revoke("ck")
    with OAuth1Session("ck", client_secret="cs", callback_uri="oob") as session:
        assert session.post(f"{fake.url}/oauth/request_token").status_code == 401
    assert requests.get(f"{fake.url}/2/users/me", auth=signed(), timeout=5).status_code == 401
