"""Dialogs end to end: `python bot.py` against the fake Bot API, across kills and workers.

The /watch dialog is the one driven here: it asks six questions (kind, target, threshold,
interval, name, confirm) and ends with a check that /checks lists, so whatever it remembered
across a restart or a change of worker shows in its last message.
"""

from __future__ import annotations

import itertools
import json
import socket
import sqlite3
import time
import urllib.request
from contextlib import closing

import pytest

from tests.fakes.telegram_api import FakeTelegram
from tests.worker_process import WorkerProcess, clean_env

TOKEN = "123456:TEST-token-for-dialogs"
OWNER = 42
SECRET = "dialogs_e2e-webhook-secret"
KIND = "What should I watch?"
TARGET = "Which host and port?"
THRESHOLD = "Alert when connecting takes longer"
INTERVAL = "How often should I check?"
NAME = "What shall I call it?"
CONFIRM = "Add this check?"


@pytest.fixture(autouse=True)
def needs_every_feature() -> None:
    for module in ("steward.posting.job", "steward.training.job"):
        pytest.importorskip(module, reason="the worker needs every feature to start")


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False) as server:
        yield server


def bot_env(fake: FakeTelegram, database: str, **extra: str) -> dict[str, str]:
    values = {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake.url,
        "TELEGRAM_CHAT_ID": str(OWNER),
        "ALLOWED_USERS": str(OWNER),
        "DATABASE_URL": database,
        "TZ": "UTC",
    }
    return clean_env(**(values | extra))


def sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'steward.sqlite'}"


def fake_port(fake: FakeTelegram) -> int:
    """The tcp target /watch is given: the fake's own port, so the check finds it up."""
    return int(fake.url.rsplit(":", 1)[1])


def texts(fake: FakeTelegram) -> list[str]:
    return [m["text"] for m in fake.messages(OWNER)]


def said(fake: FakeTelegram, contains: str, timeout: float = 30, since: int = 0) -> dict:
    """The last message to OWNER (after the first `since`) whose text holds `contains`, once it
    has been sent."""
    found: list[dict] = []

    def arrived(f: FakeTelegram) -> bool:
        found[:] = [m for m in f.messages(OWNER)[since:] if contains in m["text"]]
        return bool(found)

    assert fake.wait_for(arrived, timeout=timeout), (contains, texts(fake))
    return found[-1]


def times_said(fake: FakeTelegram, contains: str) -> int:
    """How often a message holding `contains` was sent (taking its buttons off is no resend)."""
    sent = [m for m in fake.messages(OWNER) if not m["method"].startswith("edit")]
    return sum(contains in m["text"] for m in sent)


def keyboard(message: dict) -> list[list[dict]]:
    raw = message["reply_markup"]
    return (json.loads(raw) if isinstance(raw, str) else raw)["inline_keyboard"]


def button(message: dict, label: str) -> str:
    return next(b["callback_data"] for row in keyboard(message) for b in row if b["text"] == label)


def press(fake: FakeTelegram, message: dict, label: str) -> None:
    fake.push_callback(OWNER, OWNER, button(message, label), message["message_id"])


def wait_acknowledged(fake: FakeTelegram) -> None:
    """Wait until the worker polls again: the updates it had are confirmed, so a worker started
    after a kill is not handed them a second time."""
    assert fake.wait_for(lambda f: f.polling > 0, timeout=10)


def wait_recorded(tmp_path) -> None:
    """Wait until the outbox has recorded every message as sent. A kill after Telegram took a
    message but before the store knew makes the next worker send it again: the Bot API has no
    way to ask whether a message went out, so that window is at-least-once by nature."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with closing(sqlite3.connect(tmp_path / "steward.sqlite")) as conn:
            (waiting,) = conn.execute(
                "SELECT count(*) FROM outbox WHERE state IN ('pending', 'sending')"
            ).fetchone()
        if not waiting:
            return
        time.sleep(0.05)
    raise AssertionError("the outbox did not settle")


# -- a restart in the middle of a dialog -------------------------------------------------------


def test_a_dialog_continues_after_a_sigkill_with_every_earlier_answer_remembered(fake, tmp_path):
    env = bot_env(fake, sqlite(tmp_path))
    target = f"127.0.0.1:{fake_port(fake)}"
    with WorkerProcess(env, tmp_path) as first:
        first.wait_ready()
        fake.push_message(OWNER, OWNER, "/watch")
        press(fake, said(fake, KIND), "tcp")
        said(fake, TARGET)
        fake.push_message(OWNER, OWNER, target)
        said(fake, THRESHOLD)
        fake.push_message(OWNER, OWNER, "750")
        said(fake, INTERVAL)
        wait_acknowledged(fake)
        wait_recorded(tmp_path)
        first.kill()  # SIGKILL: nothing of the dialog is left but its row in the store

    with WorkerProcess(env, tmp_path) as second:
        second.wait_ready()
        fake.push_message(OWNER, OWNER, "45s")
        # The killed worker's sender lease (15 s) runs out before this one sends.
        said(fake, NAME)
        fake.push_message(OWNER, OWNER, "fake_api")
        confirm = said(fake, CONFIRM)
        assert f"fake_api (tcp): {target}, every 45s, alert above 750 ms" in confirm["text"]
        press(fake, confirm, "Add")
        added = said(fake, "Added fake_api")
        assert f"fake_api (tcp): {target}, every 45s, alert above 750 ms" in added["text"]
        before = len(texts(fake))
        fake.push_message(OWNER, OWNER, "/checks")
        said(fake, "fake_api:", since=before)
        assert second.terminate()[0] == 0
    for question in (KIND, TARGET, THRESHOLD, INTERVAL, NAME, CONFIRM):
        assert times_said(fake, question) == 1, f"{question!r} was sent again by the replay"


# -- a dialog moving between workers behind a webhook --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Updates:
    """Updates as Telegram POSTs them, built here rather than pushed to the fake: the fake would
    deliver a pushed update to the one webhook registered last, as well as to the worker this
    test hands it to."""

    def __init__(self) -> None:
        self._update_ids = itertools.count(10_000)
        self._message_ids = itertools.count(10_000)
        self.user = {"id": OWNER, "is_bot": False, "first_name": "Test"}
        self.chat = {"id": OWNER, "type": "private", "first_name": "Test"}

    def message(self, text: str) -> dict:
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": self.chat,
            "from": self.user,
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return {"update_id": next(self._update_ids), "message": message}

    def press(self, sent: dict, label: str) -> dict:
        """A press of `label` on a message the bot sent (as the fake recorded it)."""
        message = {
            "message_id": sent["message_id"],
            "date": int(sent["time"]),
            "chat": self.chat,
            "from": {"id": int(TOKEN.split(":")[0]), "is_bot": True, "first_name": "Steward"},
            "text": sent["text"],
            "reply_markup": {"inline_keyboard": keyboard(sent)},
        }
        query = {
            "id": str(time.time_ns()),
            "from": self.user,
            "chat_instance": str(OWNER),
            "data": button(sent, label),
            "message": message,
        }
        return {"update_id": next(self._update_ids), "callback_query": query}


def post_update(port: int, update: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/telegram",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_a_dialog_continues_when_each_answer_reaches_another_worker(fake, pg_url, tmp_path):
    with WorkerProcess(bot_env(fake, pg_url), tmp_path, "migrate") as migrate:
        assert migrate.proc.wait(timeout=60) == 0, migrate.output
    ports = free_port(), free_port()
    envs = [
        bot_env(
            fake,
            pg_url,
            WEBHOOK_URL=f"http://127.0.0.1:{port}",
            PORT=str(port),
            WEBHOOK_SECRET=SECRET,
        )
        for port in ports
    ]
    updates = Updates()
    target = f"127.0.0.1:{fake_port(fake)}"
    with WorkerProcess(envs[0], tmp_path) as a, WorkerProcess(envs[1], tmp_path) as b:
        a.wait_ready()
        b.wait_ready()
        a_port, b_port = ports
        # Worker A and worker B take turns, as a load balancer might hand them out.
        steps = [
            (a_port, "/watch", KIND),
            (b_port, "tcp", TARGET),
            (a_port, target, THRESHOLD),
            (b_port, "750", INTERVAL),
            (a_port, "45s", NAME),
            (b_port, "fake_api", CONFIRM),
        ]
        for port, text, next_question in steps:
            post_update(port, updates.message(text))
            said(fake, next_question)
        post_update(a_port, updates.press(said(fake, CONFIRM), "Add"))
        added = said(fake, "Added fake_api")
        assert f"fake_api (tcp): {target}, every 45s, alert above 750 ms" in added["text"]
        before = len(texts(fake))
        post_update(b_port, updates.message("/checks"))
        said(fake, "fake_api:", since=before)
        assert a.terminate()[0] == 0
        assert b.terminate()[0] == 0
    for question in (KIND, TARGET, THRESHOLD, INTERVAL, NAME, CONFIRM):
        assert times_said(fake, question) == 1, f"{question!r} was sent more than once"


# -- /cancel and other commands during a dialog --------------------------------------------------


def test_during_a_dialog_other_commands_are_refused_help_and_status_work_and_cancel_ends_it(
    fake, tmp_path
):
    with WorkerProcess(bot_env(fake, sqlite(tmp_path)), tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(OWNER, OWNER, "/watch")
        said(fake, KIND)
        fake.push_message(OWNER, OWNER, "/checks")
        said(fake, "We are in the middle of /watch: answer the question above, or send /cancel")
        fake.push_message(OWNER, OWNER, "/help")
        said(fake, "What I can do")
        fake.push_message(OWNER, OWNER, "/status")
        said(fake, "outbox:")
        fake.push_message(OWNER, OWNER, "/cancel")
        said(fake, "Cancelled.")
        fake.push_message(OWNER, OWNER, "/cancel")
        said(fake, "There is nothing to cancel.")
        fake.push_message(OWNER, OWNER, "/checks")  # answered as usual once the dialog is gone
        said(fake, "No checks yet")
        assert worker.terminate()[0] == 0
    assert times_said(fake, "in the middle of") == 1
    assert times_said(fake, KIND) == 1


# -- the inactivity timeout -------------------------------------------------------------------


def test_a_dialog_left_unanswered_is_closed_by_the_worker_with_a_message(fake, tmp_path):
    env = bot_env(fake, sqlite(tmp_path), DIALOG_TIMEOUT="10")  # the shortest allowed
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        started = time.time()
        fake.push_message(OWNER, OWNER, "/watch")
        said(fake, KIND)
        # The question expires 10 s after it was asked; the worker sweeps every 15 s.
        closed = said(fake, "No answer in time, so I closed this conversation.", timeout=40)
        assert "Start it again with /watch." in closed["text"]
        assert closed["time"] - started >= 10, "closed before its timeout"
        worker.wait_for(r"dialog watch in chat \d+ timed out")
        fake.push_message(OWNER, OWNER, "/watch")  # a new one may start: the old one is gone
        assert fake.wait_for(lambda f: times_said(f, KIND) == 2, timeout=15), texts(fake)
        assert worker.terminate()[0] == 0


def test_a_lone_slash_during_a_dialog_is_taken_as_an_answer_not_a_command(fake, tmp_path):
    with WorkerProcess(bot_env(fake, sqlite(tmp_path)), tmp_path) as worker:
        worker.wait_ready()
        fake.push_message(OWNER, OWNER, "/watch")
        said(fake, KIND)
        fake.push_message(OWNER, OWNER, "/")  # no command entity: Telegram sees no command
        said(fake, "Please choose one of: http, tcp, evm_lag.")
        assert worker.terminate()[0] == 0
    assert "handler failed" not in worker.output
