"""Chat-id discovery: check the token, wait for one message, print the lines to set.

Finding one's chat id by hand is the step every notifier makes its users do; this removes it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError

from steward.config import EXIT_CONFIG, Settings


def config_lines(chat_id: int, user_id: int, *, env: bool) -> list[str]:
    if env:
        return [f"TELEGRAM_CHAT_ID={chat_id}", f"ALLOWED_USERS={user_id}"]
    return [f"heroku config:set TELEGRAM_CHAT_ID={chat_id} ALLOWED_USERS={user_id}"]


def write_env(env_file: Path, chat_id: int, user_id: int) -> None:
    """Set the two keys in .env, keeping other allowed users and never duplicating a key."""
    from dotenv import dotenv_values, set_key

    env_file.touch(exist_ok=True)
    current = dotenv_values(env_file).get("ALLOWED_USERS") or ""
    users = [u.strip() for u in current.replace("\n", ",").split(",") if u.strip()]
    if str(user_id) not in users:
        users.append(str(user_id))
    set_key(env_file, "TELEGRAM_CHAT_ID", str(chat_id), quote_mode="never")
    set_key(env_file, "ALLOWED_USERS", ",".join(users), quote_mode="never")


async def discover(
    settings: Settings,
    *,
    wait: float = 120.0,
    env_file: Path | None = None,
    out: Callable[[str], None] = print,
) -> int:
    if settings.telegram_token is None:
        out("TELEGRAM_TOKEN is not set: create a bot with @BotFather and set the token it gives.")
        return EXIT_CONFIG
    api = settings.telegram_api_url
    bot = Bot(
        settings.telegram_token.get_secret_value(),
        base_url=f"{api}/bot",
        base_file_url=f"{api}/file/bot",
    )
    try:
        async with bot:
            out(f"The token works: this is @{bot.username} (id {bot.id}).")
            out(f"Send any message to @{bot.username} now (waiting up to {wait:.0f} s)...")
            update = await _first_message(bot, wait)
    except InvalidToken:
        out("Telegram rejected TELEGRAM_TOKEN: check it with @BotFather (/mybots, API token).")
        return EXIT_CONFIG
    except Conflict:
        out(
            "Another process is reading this bot's updates (the worker, or a webhook): stop it "
            "first (`heroku ps:scale worker=0`), then run this again."
        )
        return 1
    except NetworkError as exc:
        out(f"Cannot reach the Bot API at {api}: {exc}.")
        return 1
    except TelegramError as exc:
        out(f"Telegram answered with an error: {exc}.")
        return 1
    if update is None:
        out(f"No message arrived within {wait:.0f} s. Send one to the bot and run this again.")
        return 1
    user, chat = update.effective_user, update.effective_chat
    who = f"{user.full_name} (@{user.username})" if user.username else user.full_name
    out(f"Got a message from {who}: user id {user.id}, {chat.type} chat {chat.id}.")
    out("Set these:")
    for line in config_lines(chat.id, user.id, env=env_file is not None):
        out(f"  {line}")
    if env_file is not None:
        write_env(env_file, chat.id, user.id)
        out(f"Written to {env_file}.")
    return 0


async def _first_message(bot: Bot, wait: float) -> Update | None:
    deadline = time.monotonic() + wait
    offset = None
    while (left := deadline - time.monotonic()) > 0:
        updates = await bot.get_updates(
            offset=offset, timeout=int(min(left, 20)), allowed_updates=["message"]
        )
        for update in updates:
            offset = update.update_id + 1
            if update.effective_user and update.effective_chat:
                # Confirm it, so the worker does not later treat it as a command.
                await bot.get_updates(offset=offset, timeout=0)
                return update
        if not updates:
            await asyncio.sleep(0)
    return None
