"""The fake Telegram Bot API answers an unmodified python-telegram-bot the way Telegram does."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fakes.telegram_api import FakeTelegram

TOKEN = "123456:TEST-token"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def timedelta_periods(monkeypatch):
    """PTB 22 warns on integer periods (RetryAfter.retry_after) unless opted in to timedelta."""
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake():
    with FakeTelegram(token=TOKEN, enforce_limits=False, fault_hold=3) as server:
        yield server


def make_bot(fake: FakeTelegram, token: str = TOKEN, **request: float) -> Bot:
    return Bot(
        token,
        base_url=f"{fake.url}/bot",
        base_file_url=f"{fake.url}/file/bot",
        request=HTTPXRequest(**request) if request else None,
    )


@pytest.fixture
async def bot(fake):
    async with make_bot(fake) as client:
        yield client


async def test_it_answers_get_me_and_refuses_a_wrong_token(fake, bot):
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "steward_test_bot")
    with pytest.raises(InvalidToken):
        async with make_bot(fake, "123456:WRONG"):  # initialize() calls getMe
            pass
    assert fake.calls[-1]["status"] == 401


async def test_it_answers_unknown_methods_404_and_takes_json_and_any_case(fake):
    async with httpx.AsyncClient(base_url=f"{fake.url}/bot{TOKEN}") as http:
        missing = await http.post("/sendTelepathy", json={})
        sent = await http.post("/SENDMESSAGE", json={"chat_id": 5, "text": "json body"})
    assert missing.status_code == 404
    assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert sent.json()["result"]["text"] == "json body"
    assert fake.messages(5)[0]["method"] == "sendMessage"


async def test_a_sent_message_round_trips_with_its_visible_text(fake, bot):
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Stop", callback_data="stop:7")]])
    html = "<b>disk</b> &lt;almost&gt; full &amp; <a href='http://x/?a=1&amp;b=2'>rising</a>"
    first = await bot.send_message(42, html, parse_mode="HTML", reply_markup=keyboard)
    reply = await bot.send_message(42, "a < b & c", reply_to_message_id=first.message_id)

    assert first.text == "disk <almost> full & rising"
    assert first.reply_markup == keyboard
    assert reply.reply_to_message.message_id == first.message_id
    assert reply.text == "a < b & c"  # without parse_mode the text is literal
    record = fake.messages(42)[0]
    assert (record["text"], record["html"], record["parse_mode"]) == (first.text, html, "HTML")
    assert record["reply_markup"] == keyboard.to_dict()
    assert fake.messages(42)[1]["reply_to_message_id"] == first.message_id


@pytest.mark.parametrize(
    "html", ["<foo>x</foo>", "a < b", "fish & chips", "<b>open", "<b><i>x</b></i>", "<br>"]
)
async def test_bad_html_is_refused_like_telegram_and_not_sent(fake, bot, html):
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(42, html, parse_mode="HTML")
    assert fake.sent == []


async def test_it_refuses_text_too_long_in_utf16_units_and_empty_text(fake, bot):
    await bot.send_message(42, "😀" * 2048)  # 4096 UTF-16 units: the most Telegram takes
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(42, "😀" * 2048 + "x")
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(42, "<b> </b>", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)caption is too long"):
        await bot.send_photo(42, b"png", caption="c" * 1025)
    assert len(fake.sent) == 1


async def test_an_injected_429_raises_retry_after_with_its_seconds(fake, bot):
    fake.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as raised:
        await bot.send_message(42, "hello")
    assert raised.value.retry_after == dtm.timedelta(seconds=7)
    assert fake.sent == []
    await bot.send_message(42, "hello")
    assert [m["text"] for m in fake.sent] == ["hello"]


async def test_flood_limits_refuse_quick_sends_to_one_chat_and_a_busy_group():
    with FakeTelegram(token=TOKEN, group_per_minute=2) as limited:
        async with make_bot(limited) as client:
            await client.send_message(42, "one")
            with pytest.raises(RetryAfter) as raised:
                await client.send_message(42, "two")
            assert raised.value.retry_after == dtm.timedelta(seconds=1)
            await client.send_message(43, "another chat is not limited")
            await client.send_message(-100, "g1")
            await client.send_message(-100, "g2")
            with pytest.raises(RetryAfter) as raised:
                await client.send_message(-100, "g3")
            assert raised.value.retry_after >= dtm.timedelta(seconds=59)
        assert [m["text"] for m in limited.sent] == [
            "one",
            "another chat is not limited",
            "g1",
            "g2",
        ]


async def test_an_application_gets_pushed_updates_by_long_polling(fake):
    seen: list[str] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="go")]])
        await update.effective_message.reply_html(
            f"hi <b>{context.args[0]}</b>", reply_markup=keyboard
        )

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.callback_query.data)
        await update.callback_query.answer()

    app = (
        Application.builder()
        .token(TOKEN)
        .base_url(f"{fake.url}/bot")
        .base_file_url(f"{fake.url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(pressed))
    async with app:
        await app.updater.start_polling(timeout=5)
        await app.start()
        fake.push_message(42, 42, "/start there", username="alice")
        assert await asyncio.to_thread(fake.wait_for_sent, 1, 42)
        fake.push_callback(42, 42, "go", fake.sent[0]["message_id"])
        assert await asyncio.to_thread(fake.wait_for, lambda f: seen == ["go"])
        await app.updater.stop()
        await app.stop()
    assert fake.sent[0]["text"] == "hi there"
    assert fake.sent[0]["reply_to_message_id"] is None
    assert any(c["method"] == "answerCallbackQuery" for c in fake.calls)


async def test_a_second_poller_ends_the_first_with_a_conflict(fake, bot):
    async with make_bot(fake) as other_instance:
        waiting = asyncio.create_task(bot.get_updates(timeout=5, read_timeout=10))
        assert await asyncio.to_thread(fake.wait_for, lambda f: f.polling == 1)
        assert await other_instance.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="(?i)terminated by other getUpdates request"):
            await waiting
    fake.conflict = True
    with pytest.raises(Conflict):
        await bot.get_updates()


async def test_offsets_confirm_updates(fake, bot):
    for text in ("one", "two"):
        fake.push_message(42, 42, text)
    first = await bot.get_updates()
    later = await bot.get_updates(offset=first[0].update_id + 1)
    assert [u.message.text for u in first] == ["one", "two"]
    assert [u.message.text for u in later] == ["two"]


async def test_sent_photo_bytes_arrive_intact_and_download_back(fake, bot):
    data = bytes(range(256)) * 64 + b"\r\n--boundary\r\n\n\r"
    message = await bot.send_photo(42, data, caption="<i>loss</i> curve", parse_mode="HTML")
    record = fake.sent[-1]
    assert record["photo"] == data
    assert (record["caption"], record["text"]) == ("loss curve", "loss curve")
    assert message.caption == "loss curve"
    file = await bot.get_file(message.photo[-1].file_id)
    assert bytes(await file.download_as_bytearray()) == data
    document = await bot.send_document(42, b"a,b\n1,2\n", filename="metrics.csv")
    assert document.document.file_name == "metrics.csv"
    assert (fake.sent[-1]["document"], fake.sent[-1]["filename"]) == (b"a,b\n1,2\n", "metrics.csv")


async def test_an_edit_with_the_same_content_is_not_modified(fake, bot):
    message = await bot.send_message(42, "epoch 1")
    await bot.edit_message_text("epoch <b>2</b>", 42, message.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("epoch <b>2</b>", 42, message.message_id, parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("epoch 3", 42, 999)
    assert [(m["method"], m["text"]) for m in fake.messages(42)] == [
        ("sendMessage", "epoch 1"),
        ("editMessageText", "epoch 2"),
    ]


async def test_chat_errors_raise_forbidden_chat_migrated_and_not_found(fake, bot):
    fake.add_chat(7, blocked=True)
    fake.add_chat(-100, type="group", title="team", migrate_to=-1001234)
    fake.add_chat(-200, type="supergroup", missing=True)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(7, "hi")
    with pytest.raises(ChatMigrated) as migrated:
        await bot.send_message(-100, "hi")
    assert migrated.value.new_chat_id == -1001234
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(-200, "hi")
    assert fake.sent == []


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str | None, dict]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        secret = self.headers.get("X-Telegram-Bot-Api-Secret-Token")
        self.received.append((secret, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_a_webhook_gets_pushed_updates_with_the_secret_header(fake, bot):
    received: list[tuple[str | None, dict]] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as receiver:
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{receiver.server_address[1]}/telegram"
        assert await bot.set_webhook(url, secret_token="s3cret_token-1")
        assert fake.webhook == {"url": url, "secret_token": "s3cret_token-1"}
        with pytest.raises(Conflict, match="(?i)webhook is active"):
            await bot.get_updates()
        update = fake.push_message(42, 42, "/status")
        assert await asyncio.to_thread(fake.wait_for, lambda f: received)
        receiver.shutdown()
    assert received == [("s3cret_token-1", update)]
    assert Update.de_json(update, bot).message.text == "/status"
    assert await bot.delete_webhook()
    assert fake.webhook is None


async def test_a_dropped_connection_is_a_network_error_and_nothing_is_sent(fake, bot):
    fake.set_faults(rate=1.0, kinds=("drop",), methods=("sendMessage",))
    with pytest.raises(NetworkError):
        await bot.send_message(42, "alert")
    fake.set_faults(rate=0)
    await bot.send_message(42, "alert")
    assert [m["text"] for m in fake.sent] == ["alert"]
    assert [c["status"] for c in fake.calls if c["method"] == "sendMessage"] == [0, 200]


async def test_a_held_request_times_out_and_is_not_sent(fake):
    fake.fail_next("sendMessage", status="timeout")
    async with make_bot(fake, read_timeout=0.3) as client:
        with pytest.raises(TimedOut):
            await client.send_message(42, "alert")
    assert fake.sent == []


async def test_it_keeps_commands_and_refuses_bad_names(fake, bot):
    assert await bot.set_my_commands([("status", "Worker status"), ("hour", "Last hour")])
    assert fake.commands == [
        {"command": "status", "description": "Worker status"},
        {"command": "hour", "description": "Last hour"},
    ]
    assert [c.command for c in await bot.get_my_commands()] == ["status", "hour"]
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad-Name", "x")])


def test_the_command_line_pushes_typed_lines_and_prints_what_the_bot_sends():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "tests.fakes.telegram_api", "--port", "0", "--user", "42"]
    with subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    ) as proc:
        url = proc.stdout.readline().strip().removeprefix("TELEGRAM_API_URL=")
        assert proc.stdout.readline().strip() == f"TELEGRAM_TOKEN={TOKEN}"
        proc.stdout.readline()  # the how-to line
        proc.stdin.write("hello bot\n")
        proc.stdin.flush()
        api = f"{url}/bot{TOKEN}"
        updates = httpx.post(f"{api}/getUpdates", data={"timeout": 5}, timeout=10).json()
        httpx.post(f"{api}/sendMessage", data={"chat_id": 42, "text": "hello human"}, timeout=10)
        assert updates["result"][0]["message"]["text"] == "hello bot"
        assert proc.stdout.readline().strip() == "[sendMessage -> 42] hello human"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
