"""The bot under faults, end to end: `python bot.py` against the fake Bot API.

The access gate whatever happens to the refusal, replies under Telegram's limits, start-up
through Bot API hiccups, SIGTERM while a thread hangs, polling after a 409 storm, webhooks.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.x_api import FakeX
from tests.posting.helpers import X_ENV
from tests.telegram.test_bot_e2e import OWNER, STRANGER, TOKEN, bot_env, free_port, post_update
from tests.worker_process import WorkerProcess

REFUSAL = "Sorry, this bot is private."


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


@pytest.fixture
def limited():
    """The fake enforcing Telegram's limits (1/s per chat, 20/min per group, 30/s overall)."""
    with FakeTelegram(token=TOKEN, enforce_limits=True) as server:
        yield server


def to_chat(fake, chat_id) -> list[dict]:
    return [m for m in fake.messages(chat_id) if m["method"] == "sendMessage"]


def answered_ok(fake, method: str) -> list[dict]:
    return [c for c in fake.calls if c["method"] == method and c["status"] == 200]


def help_marker(fake, worker) -> None:
    """The owner's /help answered: every update pushed before it was handled."""
    before = len(to_chat(fake, OWNER))
    fake.push_message(OWNER, OWNER, "/help")
    assert fake.wait_for(lambda f: len(to_chat(f, OWNER)) > before, timeout=20), worker.output


# -- the access gate ------------------------------------------------------------------------


def test_it_keeps_a_stranger_out_when_the_refusal_fails_with_a_5xx(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.fail_next("sendMessage", 500)
        fake.push_message(STRANGER, STRANGER, "/status", username="mallory")
        fake.push_message(STRANGER, STRANGER, "/pause_posting", username="mallory")
        help_marker(fake, worker)
        # The refusal is retried like every other message: it arrives, once.
        assert fake.wait_for(lambda f: to_chat(f, STRANGER), timeout=15)
        time.sleep(1)
        assert worker.terminate()[0] == 0
    assert [m["text"] for m in to_chat(fake, STRANGER)] == [REFUSAL]
    assert "posting is paused" not in worker.output
    with closing(sqlite3.connect(tmp_path / "steward.sqlite")) as conn:
        paused = conn.execute("SELECT value FROM state WHERE key LIKE '%pause%'").fetchall()
    assert paused in ([], [(None,)]), paused


def test_it_keeps_a_strangers_button_press_out_and_answers_it_when_the_answer_fails(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.fail_next("answerCallbackQuery", 500)
        fake.push_callback(STRANGER, STRANGER, "dlg:1:1:0", message_id=1)
        help_marker(fake, worker)
        assert fake.wait_for(lambda f: answered_ok(f, "answerCallbackQuery"), timeout=15)
        time.sleep(0.5)
        assert worker.terminate()[0] == 0
    assert to_chat(fake, STRANGER) == []  # no "something went wrong" in a stranger's chat
    assert "handler failed" not in worker.output


def test_a_flood_of_strangers_gets_at_most_one_refusal_each_and_never_a_command(tmp_path):
    strangers = list(range(5000, 5040))
    with FakeTelegram(token=TOKEN, enforce_limits=True, global_per_second=5) as fake:
        with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
            worker.wait_ready()
            for user in strangers:
                fake.push_message(user, user, "/status")
                fake.push_callback(user, user, "dlg:1:1:0", message_id=1)
            help_marker(fake, worker)
            time.sleep(3)
            assert worker.terminate()[0] == 0
        for user in strangers:
            texts = [m["text"] for m in to_chat(fake, user)]
            assert texts in ([], [REFUSAL]), (user, texts)
        answers = [c for c in fake.calls if c["method"] == "answerCallbackQuery"]
        assert len(answers) >= len(strangers)  # every press answered, the spinner stops
        refused = [user for user in strangers if to_chat(fake, user)]
        assert 1 <= len(refused) <= 20  # refusals are capped at 20 a minute in all


def test_a_strangers_refusal_is_remembered_across_a_restart(fake, tmp_path):
    for _start in range(2):
        with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
            worker.wait_ready()
            fake.push_message(STRANGER, STRANGER, "/status")
            help_marker(fake, worker)
            worker.wait_for(rf"refused user {STRANGER}")
            time.sleep(0.5)
            assert worker.terminate()[0] == 0
    assert [m["text"] for m in to_chat(fake, STRANGER)] == [REFUSAL]


def test_a_stranger_sees_a_minimal_menu_and_allowed_chats_the_full_one(fake, tmp_path):
    alice = 77  # allowed by @username: her chat gets the menu at her first message
    env = bot_env(fake, tmp_path, ALLOWED_USERS=f"{OWNER},@alice")
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(alice, alice, "/help", username="alice")
        assert fake.wait_for(lambda f: to_chat(f, alice), timeout=15)
        fake.push_message(alice, alice, "/help", username="alice")
        assert fake.wait_for(lambda f: len(to_chat(f, alice)) >= 2, timeout=15)
        assert worker.terminate()[0] == 0
    calls = [c["params"] for c in fake.calls if c["method"] == "setMyCommands"]
    default = [c for c in calls if (c.get("scope") or {"type": "default"})["type"] == "default"]
    assert [[x["command"] for x in c["commands"]] for c in default] == [["start"]]
    for user in (OWNER, alice):
        menus = [c for c in calls if (c.get("scope") or {}).get("chat_id") == user]
        assert len(menus) == 1, (user, calls)
        assert {"help", "status", "mute", "cancel"} <= {x["command"] for x in menus[0]["commands"]}


# -- replies under Telegram's limits --------------------------------------------------------


def test_fifty_chats_typing_at_once_get_every_reply_once_and_in_order(limited, tmp_path):
    users = list(range(2000, 2050))
    env = bot_env(limited, tmp_path, ALLOWED_USERS=",".join(map(str, users)))
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        for text in ("/help", "/start"):
            for user in users:
                limited.push_message(user, user, text)
        everyone = lambda f: all(len(to_chat(f, u)) >= 2 for u in users)  # noqa: E731
        assert limited.wait_for(everyone, timeout=60), worker.output
        time.sleep(1)
        assert worker.terminate()[0] == 0
    for user in users:
        texts = [m["text"] for m in to_chat(limited, user)]
        assert len(texts) == 2 and texts[1].startswith("Hello"), (user, texts)
    assert "handler failed" not in worker.output


def test_a_reply_hit_by_a_5xx_then_a_429_arrives_once_without_a_traceback(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.fail_next("sendMessage", 502)
        fake.fail_next("sendMessage", 429, retry_after=1)
        fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: to_chat(f, OWNER), timeout=15)
        time.sleep(1)
        assert worker.terminate()[0] == 0
    assert len(to_chat(fake, OWNER)) == 1
    assert "Traceback" not in worker.output and "handler failed" not in worker.output


def test_an_unknown_command_gets_a_pointer_to_help(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(OWNER, OWNER, "/frobnicate now")
        assert fake.wait_for(lambda f: to_chat(f, OWNER), timeout=15)
        fake.push_message(OWNER, OWNER, "/mute 99999d")
        assert fake.wait_for(lambda f: len(to_chat(f, OWNER)) >= 2, timeout=15)
        fake.push_callback(OWNER, OWNER, "nobody:handles-this", message_id=1)
        assert fake.wait_for(lambda f: answered_ok(f, "answerCallbackQuery"), timeout=15)
        assert worker.terminate()[0] == 0
    unknown, mute = (m["text"] for m in to_chat(fake, OWNER))
    assert unknown == "Unknown command /frobnicate, see /help."
    assert "at most 30 days" in mute
    assert "OverflowError" not in worker.output


# -- start-up, shutdown, polling --------------------------------------------------------------


def test_it_starts_through_a_5xx_and_a_429_on_get_me(fake, tmp_path):
    fake.fail_next("getMe", 500)
    fake.fail_next("getMe", 429, retry_after=1)
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready(timeout=40)
        fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: to_chat(f, OWNER), timeout=15)
        assert worker.terminate()[0] == 0
    attempts = [line for line in worker.lines if "Bot API not ready" in line]
    assert len(attempts) == 2, worker.output
    assert "Traceback" not in worker.output


def test_sigterm_during_a_hanging_x_request_exits_within_ten_seconds(fake, tmp_path):
    with FakeX() as x:
        x.add_user("42", "owner", "42-token", "42-secret")
        x.take_delay = 60
        env = bot_env(fake, tmp_path, POST_INTERVAL="1", X_API_URL=x.url, **X_ENV)
        db = tmp_path / "steward.sqlite"
        with WorkerProcess(env, tmp_path) as worker:
            worker.wait_ready()

            def posting() -> bool:
                with closing(sqlite3.connect(db)) as conn:
                    return bool(
                        conn.execute("SELECT 1 FROM posts WHERE state='pending'").fetchall()
                    )

            deadline = time.monotonic() + 30
            while not posting():
                assert time.monotonic() < deadline, worker.output
                time.sleep(0.1)
            time.sleep(1)  # the request to X is on its way and hangs
            status, took = worker.terminate(timeout=20)
        assert took < 10, (took, worker.output)
        with closing(sqlite3.connect(db)) as conn:
            states = [r[0] for r in conn.execute("SELECT state FROM posts")]
    assert states == ["pending"]  # recovered at the next start


def test_replies_come_within_ten_seconds_of_a_409_storms_end(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.set_conflict(True)
        conflicts = lambda f: [c for c in f.calls if c["status"] == 409]  # noqa: E731
        assert fake.wait_for(lambda f: len(conflicts(f)) >= 7, timeout=60)
        fake.set_conflict(False)
        ended = time.monotonic()
        fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: to_chat(f, OWNER), timeout=30)
        took = time.monotonic() - ended
        assert worker.terminate()[0] == 0
    assert took < 10, took
    assert 1 <= len([line for line in worker.lines if "409 Conflict" in line]) <= 2


# -- webhooks -------------------------------------------------------------------------------


def test_a_repeated_webhook_update_is_answered_once_and_a_bad_body_gets_400(fake, tmp_path):
    port = free_port()
    secret = "s3cret_webhook-token"
    env = bot_env(
        fake,
        tmp_path,
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        PORT=str(port),
        WEBHOOK_SECRET=secret,
    )
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        update = fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: to_chat(f, OWNER), timeout=15)
        assert post_update(port, update, secret) == 200  # Telegram retrying a delivery
        assert post_update(port, update, secret) == 200
        assert post_bytes(port, b"", secret) == 400
        assert post_bytes(port, b"{not json", secret) == 400
        fake.push_message(OWNER, OWNER, "/start")  # a marker: after the repeats
        assert fake.wait_for(lambda f: len(to_chat(f, OWNER)) >= 2, timeout=15)
        time.sleep(0.5)
        assert worker.terminate()[0] == 0
    assert len(to_chat(fake, OWNER)) == 2
    assert "CRITICAL" not in worker.output and "Traceback" not in worker.output


def post_bytes(port: int, body: bytes, secret: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram",
        data=body,
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
