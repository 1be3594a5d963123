"""/post, /posts, /pause_posting, /resume_posting: renders, the dialog, the bot end to end."""

from __future__ import annotations

import datetime as dt
import json
import re
from types import SimpleNamespace

import pytest

from steward.posting.commands import (
    POST_DIALOG_VERSION,
    post_dialog,
    render_draft,
    render_outcomes,
    render_posts,
)
from steward.posting.store import Post
from steward.telegram.dialogs import Answer, DialogEngine
from tests.clock import Clock
from tests.fakes.telegram_api import FakeTelegram
from tests.posting.helpers import outbox_rows, poster, rows, x_env
from tests.worker_process import WorkerProcess, clean_env

CHAT, USER = 1000, 42
TOKEN = "123456:TEST-token-for-posting"


def test_the_outcome_says_where_the_post_went_with_links_and_escapes_errors():
    text = render_outcomes(
        [
            {"channel": "x", "state": "sent", "url": "https://x.com/alice/status/7"},
            {"channel": "telegram", "state": "sent", "url": None},
            {"channel": "x", "state": "pending", "error": "X said <no>"},
        ],
        "@mychannel",
    )
    assert '<a href="https://x.com/alice/status/7">posted</a>' in text
    assert '<a href="https://t.me/mychannel">queued for the channel</a>' in text
    assert "X said &lt;no&gt;" in text


def test_the_draft_is_escaped_and_a_dry_run_says_so():
    draft = render_draft("a <b>bold</b> & odd post", ["dry-run"], None)
    assert "a &lt;b&gt;bold&lt;/b&gt; &amp; odd post" in draft
    assert "X_CONSUMER_KEY" in draft


def test_the_post_list_shows_state_time_channel_text_and_link():
    at = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    post = Post(
        1, "hi <there>", "h", "x", "sent", "9", "https://x.com/a/status/9", None, at, at, at
    )
    text = render_posts([post], dt.UTC, None)
    assert "✅ 2026-05-01 12:00 UTC · X · hi &lt;there&gt;" in text
    assert '<a href="https://x.com/a/status/9">link</a>' in text
    assert "No posts yet" in render_posts([], dt.UTC, None)


def test_a_channel_post_shows_what_the_outbox_made_of_it():
    at = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)

    def post(n: int) -> Post:
        return Post(n, f"post {n}", "h", "telegram", "sent", f"outbox:{n}", None, None, at, at, at)

    deliveries = {
        1: SimpleNamespace(state="sent", message_id=55, reason=None),
        2: SimpleNamespace(state="pending", message_id=None, reason=None),
        3: SimpleNamespace(state="failed", message_id=None, reason="bot is not a member"),
    }
    lines = render_posts([post(1), post(2), post(3)], dt.UTC, "@mychannel", deliveries)
    sent, queued, failed = lines.splitlines()[1:]
    assert sent.startswith("✅") and '<a href="https://t.me/mychannel/55">link</a>' in sent
    assert queued.startswith("⏳") and "queued for the channel" in queued
    assert failed.startswith("❌") and "bot is not a member" in failed


def dialog_engine(engine, clock, p) -> DialogEngine:
    dialogs = DialogEngine(engine, p.outbox, clock=clock)
    dialogs.register("post", post_dialog(p), version=POST_DIALOG_VERSION)
    return dialogs


def drafts(engine) -> list[str]:
    found = []
    for row in outbox_rows(engine):
        if row.edit is None and row.text and row.text.startswith("<b>Draft</b>"):
            found.append(row.text.split("\n\n", 1)[1])
    return found


async def test_post_shows_a_draft_another_replaces_it_and_post_publishes_it_once(engine, fake):
    clock = Clock()
    p = poster(engine, clock, **x_env(fake))
    dialogs = dialog_engine(engine, clock, p)
    assert await dialogs.start("post", CHAT, USER)
    assert len(drafts(engine)) == 1
    assert outbox_rows(engine)[-1].buttons == [
        [
            [label, f"dlg:{dialogs.open_dialog(CHAT)['dialog_id']}:1:{i}"]
            for i, label in enumerate(["Post", "Another", "Cancel"])
        ]
    ]
    asked = outbox_rows(engine)[-1]
    assert await dialogs.answer(CHAT, Answer(text="Another"))
    first, second = drafts(engine)
    [closing] = [r for r in outbox_rows(engine) if r.edit == asked.key]
    assert closing.text == asked.text and not closing.buttons, "the old draft loses its buttons"
    assert await dialogs.answer(CHAT, Answer(text="Post"))
    assert [post["text"] for post in fake.posts] == [second.replace("&amp;", "&")]
    assert f"https://x.com/alice/status/{fake.posts[0]['id']}" in outbox_rows(engine)[-1].text
    assert dialogs.open_dialog(CHAT) is None
    assert not await dialogs.answer(CHAT, Answer(text="Post")), "nothing left to replay"
    assert len(fake.posts) == 1


async def test_cancel_ends_the_dialog_without_posting(engine, fake):
    clock = Clock()
    p = poster(engine, clock, **x_env(fake))
    dialogs = dialog_engine(engine, clock, p)
    await dialogs.start("post", CHAT, USER)
    await dialogs.answer(CHAT, Answer(text="Cancel"))
    assert fake.posts == [] and rows(engine) == []
    assert "nothing was posted" in outbox_rows(engine)[-1].text


# -- the bot as a user meets it ----------------------------------------------------------------


def markup(message: dict) -> list[list[dict]]:
    raw = message["reply_markup"]
    return (json.loads(raw) if isinstance(raw, str) else raw)["inline_keyboard"]


def press(telegram: FakeTelegram, message: dict, label: str) -> None:
    button = next(b for row in markup(message) for b in row if b["text"] == label)
    telegram.push_callback(CHAT, USER, button["callback_data"], message["message_id"])


def sent(telegram: FakeTelegram) -> list[dict]:
    """Messages sent to the chat (an answered question losing its buttons is an edit)."""
    return [m for m in telegram.messages(CHAT) if not m["method"].startswith("edit")]


def closed(telegram: FakeTelegram, question: dict) -> bool:
    """Has the question lost its buttons (by an edit of its message)?"""
    return any(
        m["method"].startswith("edit")
        and m["message_id"] == question["message_id"]
        and not m.get("reply_markup")
        for m in telegram.messages(CHAT)
    )


def texts(telegram: FakeTelegram) -> list[str]:
    return [m["text"] for m in sent(telegram)]


def test_the_post_dialog_and_the_posting_commands_end_to_end(tmp_path, fake):
    pytest.importorskip("steward.training.job", reason="the worker needs every feature to start")
    with FakeTelegram(token=TOKEN, enforce_limits=False) as telegram:
        env = clean_env(
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_API_URL=telegram.url,
            TELEGRAM_CHAT_ID=str(CHAT),
            ALLOWED_USERS=str(USER),
            DATABASE_URL=f"sqlite:///{tmp_path / 'steward.sqlite'}",
            POST_INTERVAL="600",
            **x_env(fake),
        )
        with WorkerProcess(env, tmp_path) as worker:
            worker.wait_ready()
            worker.wait_for(r"tick of .*: 1 sent")  # a new job's first tick runs at start
            ticked = len(fake.posts)
            telegram.push_message(CHAT, USER, "/post")
            assert telegram.wait_for(lambda f: any(t.startswith("Draft") for t in texts(f)), 15)
            draft = next(m for m in sent(telegram) if m["text"].startswith("Draft"))
            press(telegram, draft, "Another")
            assert telegram.wait_for(
                lambda f: sum(t.startswith("Draft") for t in texts(f)) == 2, 15
            )
            assert telegram.wait_for(lambda f: closed(f, draft), 15), "the old draft's buttons go"
            typed = [m for m in sent(telegram) if m["text"].startswith("Draft")][-1]
            telegram.push_message(CHAT, USER, "Another")  # typed instead of pressed
            assert telegram.wait_for(
                lambda f: sum(t.startswith("Draft") for t in texts(f)) == 3, 15
            )
            assert telegram.wait_for(lambda f: closed(f, typed), 15), "typed: its buttons go too"
            second = [m for m in sent(telegram) if m["text"].startswith("Draft")][-1]
            assert markup(second), "the draft in question keeps its buttons"
            press(telegram, second, "Post")
            assert telegram.wait_for(lambda f: "X: posted" in texts(f)[-1], 15)
            press(telegram, second, "Post")  # a second press of an answered question
            telegram.push_message(CHAT, USER, "/pause_posting")
            assert telegram.wait_for(lambda f: "Posting paused" in texts(f)[-1], 15)
            telegram.push_message(CHAT, USER, "/posts")
            assert telegram.wait_for(lambda f: texts(f)[-1].startswith("Last "), 15)
            assert worker.terminate()[0] == 0
    assert len(fake.posts) == ticked + 1, "one post from the dialog, however often pressed"
    assert fake.posts[-1]["text"] in second["text"]
    listed = sent(telegram)[-1]
    assert f"Last {ticked + 1} posts" in listed["text"]
    assert re.search(r"x\.com/alice/status/\d+", listed["html"] or "")
