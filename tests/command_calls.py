"""Calling a feature's command callbacks the way python-telegram-bot does, in this process.

The update comes from the fake Bot API (as if the user had typed the text) and the callback's
replies go back to it, so a test sees exactly what the chat would.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from types import SimpleNamespace

from telegram import Bot, Update

from steward.features import Command


@asynccontextmanager
async def command_caller(fake, token: str, chat: int, commands: list[Command]):
    """Yields `call(text) -> messages the bot sent to `chat` while handling it`; and
    `call.press(message, label)`, which presses a button of a message the bot sent and returns
    what the bot sent or edited meanwhile."""
    by_name = {c.name: c.callback for c in commands}
    buttons = {c.name: c.on_button for c in commands if c.on_button is not None}
    bot = Bot(token, base_url=f"{fake.url}/bot", base_file_url=f"{fake.url}/file/bot")
    await bot.initialize()

    async def call(text: str) -> list[dict]:
        before = len(fake.messages(chat))
        update = Update.de_json(fake.push_message(chat, chat, text), bot)
        name, *args = text[1:].split()
        await by_name[name](update, SimpleNamespace(args=args))
        return fake.messages(chat)[before:]

    async def press(message: dict, label: str) -> list[dict]:
        raw = message["reply_markup"]
        rows = (json.loads(raw) if isinstance(raw, str) else raw)["inline_keyboard"]
        data = next(b["callback_data"] for row in rows for b in row if b["text"] == label)
        before = len(fake.messages(chat))
        update = Update.de_json(fake.push_callback(chat, chat, data, message["message_id"]), bot)
        await buttons[data.split(":", 1)[0]](update, SimpleNamespace(args=[]))
        return fake.messages(chat)[before:]

    call.press = press
    try:
        yield call
    finally:
        await bot.shutdown()
