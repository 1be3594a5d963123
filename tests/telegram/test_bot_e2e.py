"""The bot end to end: `python bot.py` against the fake Bot API, as a user meets it."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import closing

import pytest

from tests.fakes.telegram_api import FakeTelegram
from tests.worker_process import ROOT, WorkerProcess, clean_env

TOKEN = "123456:TEST-token-for-e2e"
OWNER, STRANGER = 42, 666


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


def bot_env(fake, tmp_path, **extra: str) -> dict[str, str]:
    """A worker talking to the fake as OWNER's bot; `extra` adds or overrides variables."""
    values = {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake.url,
        "TELEGRAM_CHAT_ID": str(OWNER),
        "ALLOWED_USERS": str(OWNER),
        "DATABASE_URL": f"sqlite:///{tmp_path}/steward.sqlite",
    }
    return clean_env(**(values | extra))


def replies_to(fake, chat_id) -> list[dict]:
    return [m for m in fake.messages(chat_id) if m["method"] == "sendMessage"]


def test_an_allowed_users_status_gets_an_answer(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(OWNER, OWNER, "/status")
        assert fake.wait_for(
            lambda f: any(
                "steward" in m["text"] and "store" in m["text"] for m in replies_to(f, OWNER)
            ),
            timeout=15,
        )
        assert worker.terminate()[0] == 0


def test_the_command_menu_is_published(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
    names = {c["command"] for c in fake.commands}
    assert {"start", "help", "status", "mute", "unmute", "cancel"} <= names


def test_a_stranger_gets_one_polite_refusal_and_nothing_else(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        for text in ("/status", "/help", "hello", "/runs"):
            fake.push_message(STRANGER, STRANGER, text, username="mallory")
        fake.push_message(OWNER, OWNER, "/help")  # a marker: once answered, all was handled
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        time.sleep(0.5)
        worker.wait_for(rf"refused user {STRANGER}")
    to_stranger = replies_to(fake, STRANGER)
    assert len(to_stranger) == 1
    assert to_stranger[0]["text"] == "Sorry, this bot is private."


def test_a_group_message_is_ignored_by_default(fake, tmp_path):
    fake.add_chat(-100, type="group", title="team")
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(-100, OWNER, "/status", chat_type="group")
        fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        time.sleep(0.5)
    assert replies_to(fake, -100) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_update(port: int, update: dict, secret: str | None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if secret is not None:
        request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def test_webhook_mode_registers_the_secret_and_rejects_requests_without_it(fake, tmp_path):
    port = free_port()
    env = bot_env(
        fake,
        tmp_path,
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        PORT=str(port),
        WEBHOOK_SECRET="s3cret_webhook-token",
    )
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        assert fake.webhook["url"] == f"http://127.0.0.1:{port}/telegram"
        assert fake.webhook["secret_token"] == "s3cret_webhook-token"
        update = fake.push_message(OWNER, OWNER, "/help")  # the fake delivers it by webhook
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        forged = dict(update, update_id=update["update_id"] + 100)
        assert post_update(port, forged, None) == 403
        assert post_update(port, forged, "wrong") == 403
        assert worker.terminate()[0] == 0
        assert "s3cret_webhook-token" not in worker.output


def test_409_storms_neither_crash_nor_flood_the_log(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        fake.set_conflict(True)
        time.sleep(6)
        fake.set_conflict(False)
        fake.push_message(OWNER, OWNER, "/help")
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=20)
        assert worker.proc.poll() is None
        conflicts = [line for line in worker.lines if "409 Conflict" in line]
        assert 1 <= len(conflicts) <= 2, conflicts
        assert worker.terminate()[0] == 0


def test_an_invalid_token_stops_the_worker_with_a_clear_line(fake, tmp_path):
    env = bot_env(fake, tmp_path, TELEGRAM_TOKEN="123456:WRONG-token")
    with WorkerProcess(env, tmp_path) as worker:
        assert worker.proc.wait(timeout=30) == 78
    assert "TELEGRAM_TOKEN was rejected" in worker.output
    assert "WRONG-token" not in worker.output


def notify_from_another_process(tmp_path, text: str, key: str) -> None:
    code = (
        "import sys; from steward import db; from steward.telegram.outbox import Outbox;"
        "from steward.telegram.formatting import esc;"
        f"e = db.make_engine('sqlite:///{tmp_path}/steward.sqlite'); db.upgrade(e);"
        f"Outbox(e, '{OWNER}').notify(esc(sys.argv[1]), key=sys.argv[2])"
    )
    subprocess.run(
        [sys.executable, "-c", code, text, key], check=True, cwd=ROOT, env=clean_env(), timeout=60
    )


def test_a_notification_survives_a_sigkill_before_it_was_sent_and_arrives_once(fake, tmp_path):
    fake.set_faults(rate=1.0, kinds=("5xx",), methods=("sendMessage",), seed=1)
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        notify_from_another_process(tmp_path, "disk <almost> full & rising", "disk-1")
        notify_from_another_process(tmp_path, "disk <almost> full & rising", "disk-1")
        time.sleep(2)  # the sender tries and fails: Telegram answers 502
        worker.kill()  # SIGKILL: no chance to clean up
    fake.set_faults(rate=0.0)
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        # The killed worker's sender lease (15 s) must run out before this one sends.
        assert fake.wait_for(
            lambda f: any(m["text"] == "disk <almost> full & rising" for m in f.sent), timeout=30
        )
        time.sleep(1.5)
        assert worker.terminate()[0] == 0
    delivered = [m for m in fake.sent if m["text"] == "disk <almost> full & rising"]
    assert len(delivered) == 1


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_no_secret_reaches_any_log_line_even_at_debug(fake, tmp_path, request, backend):
    secrets = {
        "X_CONSUMER_KEY": "xck-Secret-1111",
        "X_CONSUMER_SECRET": "xcs-Secret-2222",
        "X_ACCESS_TOKEN": "xat-Secret-3333",
        "X_ACCESS_SECRET": "xas-Secret-4444",
        "WEBHOOK_SECRET": "whs-Secret-5555",
    }
    hidden = [TOKEN, *secrets.values()]
    extra = {}
    if backend == "postgres":
        pg_url = request.getfixturevalue("pg_url")
        extra["DATABASE_URL"] = pg_url.replace(
            "postgresql+psycopg://postgres@", "postgresql://postgres:Pg-Secret-9977@"
        )
        hidden.append("Pg-Secret-9977")
    env = bot_env(fake, tmp_path, LOG_LEVEL="DEBUG", X_API_URL="http://127.0.0.1:9", **secrets)
    env.update(extra)
    with WorkerProcess(env, tmp_path, "migrate") as migrate:
        assert migrate.proc.wait(timeout=60) == 0
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(OWNER, OWNER, "/status")
        fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        time.sleep(1)
        worker.terminate()
    everything = worker.output + migrate.output
    assert "HTTP Request" in worker.output or "getUpdates" in worker.output  # DEBUG is on
    for value in hidden:
        assert value not in everything, value


def test_the_webhook_secret_derived_from_the_token_is_never_logged(fake, tmp_path):
    from steward.config import load_settings

    port = free_port()
    env = bot_env(
        fake, tmp_path, WEBHOOK_URL=f"http://127.0.0.1:{port}", PORT=str(port), LOG_LEVEL="DEBUG"
    )
    derived = load_settings({"TELEGRAM_TOKEN": TOKEN}, env_file=None).effective_webhook_secret()
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        assert fake.webhook["secret_token"] == derived
        assert worker.terminate()[0] == 0
    assert "setWebhook" in worker.output  # DEBUG shows the call, with the secret hidden
    assert derived not in worker.output


def test_help_lists_every_features_commands_and_mute_and_unmute_answer(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        for text in ("/help", "/mute 2h", "/unmute", "/mute soon"):
            before = len(replies_to(fake, OWNER))
            fake.push_message(OWNER, OWNER, text)
            assert fake.wait_for(lambda f, n=before: len(replies_to(f, OWNER)) > n, timeout=15)
        help_, muted, unmuted, wrong = (m["html"] for m in replies_to(fake, OWNER))
        assert worker.terminate()[0] == 0
    for line in ("/post - ", "/runs - ", "/stop - ", "/checks - ", "/watch - ", "/cancel - "):
        assert line in help_, line
    assert muted.startswith("🔕 Muted for 2h, until ")
    assert unmuted.startswith("🔔 Notifications are on again.")
    assert wrong.startswith("'soon' is not a duration")


def test_a_burst_from_a_hundred_chats_gets_every_reply_while_telegram_is_slow(fake, tmp_path):
    # More replies in flight than the bot keeps connections: the rest wait for a connection
    # (seconds here) instead of failing with a pool timeout.
    users = list(range(1000, 1100))
    env = bot_env(fake, tmp_path, ALLOWED_USERS=",".join(map(str, users)))
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        fake.reply_delay = 0.6
        for user in users:
            fake.push_message(user, user, "/help")
        everyone = lambda f: all(replies_to(f, user) for user in users)  # noqa: E731
        assert fake.wait_for(everyone, timeout=60)
        time.sleep(0.5)  # a late duplicate would arrive now
        fake.reply_delay = 0
        assert worker.terminate()[0] == 0
    assert [len(replies_to(fake, user)) for user in users] == [1] * len(users)
    assert "handler failed" not in worker.output


def test_a_failing_command_is_logged_and_the_user_told_something_went_wrong(fake, tmp_path):
    with WorkerProcess(bot_env(fake, tmp_path), tmp_path) as worker:
        worker.wait_ready()
        # The store loses a table under the running worker: /runs cannot read it.
        with closing(sqlite3.connect(tmp_path / "steward.sqlite")) as conn:
            conn.execute("DROP TABLE run_commands")
            conn.execute("DROP TABLE run_events")
            conn.execute("DROP TABLE metrics")
            conn.execute("DROP TABLE runs")
        fake.push_message(OWNER, OWNER, "/runs")
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        (sorry,) = replies_to(fake, OWNER)
        line = worker.wait_for(r"handler failed on update \d+ chat 42 user 42 text '/runs'")
        assert worker.terminate()[0] == 0
    assert sorry["text"] == "Sorry, something went wrong. It has been logged."
    assert "no such table" in worker.output[worker.output.index(line) :]
    assert TOKEN not in worker.output


def test_with_allowed_users_empty_everyone_is_refused_and_the_log_says_how_to_fix_it(
    fake, tmp_path
):
    with WorkerProcess(bot_env(fake, tmp_path, ALLOWED_USERS=""), tmp_path) as worker:
        worker.wait_ready()
        warning = worker.wait_for(r"ALLOWED_USERS is empty")
        fake.push_message(OWNER, OWNER, "/status")
        assert fake.wait_for(lambda f: replies_to(f, OWNER), timeout=15)
        assert worker.terminate()[0] == 0
    assert "python auth_tool.py telegram" in warning
    assert [m["text"] for m in replies_to(fake, OWNER)] == ["Sorry, this bot is private."]
