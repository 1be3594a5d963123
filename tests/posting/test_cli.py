"""`python bot.py post [--dry-run]` as cron or Heroku Scheduler runs it, and the seed's config."""

from __future__ import annotations

import re

import pytest

from steward import db
from steward.posting.sources import russian_nouns_available
from tests.fakes.x_api import FakeX
from tests.posting.helpers import bot, rows, x_env
from tests.worker_process import clean_env


def store_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'steward.sqlite'}"


def stored(tmp_path):
    engine = db.make_engine(store_url(tmp_path))
    try:
        return rows(engine)
    finally:
        engine.dispose()


def test_dry_run_prints_the_next_ticks_posts_and_neither_publishes_nor_records(tmp_path, fake):
    env = clean_env(DATABASE_URL=store_url(tmp_path), TWEETS_PER_TICK="3", **x_env(fake))
    result = bot(env, tmp_path, "post", "--dry-run")
    assert result.returncode == 0, result.stdout
    texts = re.findall(r"^\d\. (.+)$", result.stdout, re.MULTILINE)
    assert len(texts) == 3 and len(set(texts)) == 3
    assert fake.posts == [] and [c for c in fake.calls if c["path"] == "/2/tweets"] == []
    assert stored(tmp_path) == []
    again = bot(env, tmp_path, "post")  # what a preview showed may still be posted
    assert again.returncode == 0, again.stdout
    assert len(fake.posts) == 3


def test_dry_run_works_on_a_fresh_checkout_with_nothing_configured(tmp_path):
    result = bot(clean_env(), tmp_path, "post", "--dry-run")
    assert result.returncode == 0, result.stdout
    assert re.search(r"^1\. .+ and .+: a fine pair for today\.$", result.stdout, re.MULTILINE)


def test_post_runs_one_tick_through_the_fake_x_and_exits_0(tmp_path, fake):
    env = clean_env(DATABASE_URL=store_url(tmp_path), TWEETS_PER_TICK="2", **x_env(fake))
    result = bot(env, tmp_path, "post")
    assert result.returncode == 0, result.stdout
    assert len(fake.posts) == 2
    assert all(f"https://x.com/alice/status/{p['id']}" in result.stdout for p in fake.posts)
    assert [r.state for r in stored(tmp_path)] == ["sent", "sent"]


def test_post_fails_with_one_sentence_when_x_cannot_be_reached(tmp_path):
    env = clean_env(
        DATABASE_URL=store_url(tmp_path),
        **{**x_env(FakeX()), "X_API_URL": "http://127.0.0.1:9"},
    )
    result = bot(env, tmp_path, "post")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout
    assert "X could not be reached" in result.stdout.splitlines()[-1]
    assert [r.state for r in stored(tmp_path)] == ["pending"], "kept for the next run"


def test_post_with_a_broken_template_exits_78_with_one_line(tmp_path):
    result = bot(clean_env(POST_TEMPLATE="100% sure"), tmp_path, "post")
    assert result.returncode == 78
    assert result.stdout.strip().count("\n") == 0 and "POST_TEMPLATE" in result.stdout


def test_post_asks_x_for_the_account_name_once_not_on_every_run(tmp_path, fake):
    env = clean_env(DATABASE_URL=store_url(tmp_path), **x_env(fake))
    for _ in range(2):
        assert bot(env, tmp_path, "post").returncode == 0
    assert [c["path"] for c in fake.calls].count("/2/users/me") == 1
    assert all(r.url.startswith("https://x.com/alice/") for r in stored(tmp_path))


def test_a_template_that_can_never_fit_exits_78_at_start(tmp_path):
    result = bot(clean_env(POST_TEMPLATE="{word} " + "much too long " * 30), tmp_path, "post")
    assert result.returncode == 78, result.stdout
    assert "POST_TEMPLATE" in result.stdout and "too long for dry-run" in result.stdout


@pytest.mark.skipif(russian_nouns_available(), reason="pymorphy3 is installed here")
def test_a_russian_template_without_pymorphy3_is_warned_about_at_start(tmp_path):
    env = clean_env(POST_TEMPLATE="%s – это когда тебя любят.")
    result = bot(env, tmp_path, "post", "--dry-run")
    assert result.returncode == 0 and "pymorphy3 is not installed" in result.stdout


def test_a_seed_style_environment_posts_through_the_fake_x_end_to_end(tmp_path, fake):
    fake.add_user("77", "bob", "77-token", "77-secret")
    fake.add_timeline_post("77", "Lanterns glow over quiet meadows")
    env = clean_env(
        DATABASE_URL=store_url(tmp_path),
        X_API_URL=fake.url,
        consumer_key="ck",
        consumer_secret="cs",
        user_access_token="42-token",
        user_access_secret="42-secret",
        reader_name="bob",
        bob_access_token="77-token",
        bob_access_secret="77-secret",
        template="%s – это когда тебя любят.",
        timeout="30",
        tweet_grab="5",
        tweets_per_tick="2",
    )
    result = bot(env, tmp_path, "post")
    assert result.returncode == 0, result.stdout
    texts = sorted(p["text"] for p in fake.posts)
    words = {"lanterns", "glow", "quiet", "meadows"}
    assert len(texts) == 2
    assert all(t.endswith(" – это когда тебя любят.") and t.split(" ")[0] in words for t in texts)
    assert any("timelines/reverse_chronological" in c["path"] for c in fake.calls)
    assert {p["user_id"] for p in fake.posts} == {"42"}, "posted as the user, read as the reader"
