"""The python-telegram-bot Application: built for TELEGRAM_API_URL, polling or webhook.

Updates from one chat are handled in order, different chats concurrently (`PerChatProcessor`),
so one slow command never stalls everybody else.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable

from telegram import BotCommand, Update
from telegram.error import Conflict, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
)

from steward.config import Settings
from steward.features import Command
from steward.telegram.access import AccessControl

log = logging.getLogger("steward.telegram")
WEBHOOK_PATH = "telegram"
CONFLICT_LOG_EVERY = 60.0  # seconds between 409 warnings: a deploy overlap must not flood logs
SORRY = "Sorry, something went wrong. It has been logged."
# httpx's connection pool checks every open connection on each request, so its cost grows with
# the pool: 16 connections handle bursts about twice as fast as PTB's default of 256
# (bench/updates.py), and still exceed what Telegram lets a bot send (30 messages a second).
# Requests beyond 16 wait for a free connection; waiting must not turn into an error.
CONNECTION_POOL_SIZE = 16
POOL_TIMEOUT = 20.0  # seconds


class PerChatProcessor(BaseUpdateProcessor):
    """Concurrent across chats, sequential within a chat (one lock per busy chat).

    A chat's lock is forgotten only when no update of that chat holds it or waits for it:
    dropping it while one waits would let the next update take a fresh lock and overtake.
    """

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, tuple[asyncio.Lock, list[int]]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable) -> None:
        key = 0
        if isinstance(update, Update):
            chat, user = update.effective_chat, update.effective_user
            key = chat.id if chat else (user.id if user else 0)
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                await coroutine
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    async def initialize(self) -> None:
        pass  # nothing to set up: locks are made per chat on demand

    async def shutdown(self) -> None:
        self._locks.clear()


def build_application(settings: Settings, access: AccessControl, router=None) -> Application:
    api = settings.telegram_api_url
    app = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())  # type: ignore[union-attr]
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(PerChatProcessor())
        .connection_pool_size(CONNECTION_POOL_SIZE)
        .pool_timeout(POOL_TIMEOUT)
        .job_queue(None)  # steward's own scheduler runs the jobs (steward/scheduler.py)
        .build()
    )
    # Handler groups run in order: strangers stop at -2, an open dialog takes its chat's
    # messages at -1, and commands (group 0) see the rest.
    app.add_handler(TypeHandler(Update, access.gate), group=-2)
    if router is not None:
        app.add_handler(TypeHandler(Update, router.route), group=-1)
    app.add_error_handler(on_error)
    return app


def add_commands(app: Application, commands: list[Command]) -> None:
    for command in commands:
        app.add_handler(CommandHandler(command.name, command.callback))
        if command.on_button is not None:
            pattern = f"^{command.name}:"
            app.add_handler(CallbackQueryHandler(command.on_button, pattern=pattern))


async def publish_commands(app: Application, commands: list[Command]) -> None:
    menu = [BotCommand(c.name, c.description[:256]) for c in commands]
    await app.bot.set_my_commands(menu)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every handler failure with its update, and tell the person rather than go silent."""
    where = "no update"
    if isinstance(update, Update):
        chat = update.effective_chat.id if update.effective_chat else "-"
        user = update.effective_user.id if update.effective_user else "-"
        text = update.effective_message.text if update.effective_message else None
        where = f"update {update.update_id} chat {chat} user {user} text {text!r}"
    log.error("handler failed on %s", where, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        try:
            await update.effective_message.reply_text(SORRY)
        except TelegramError:
            log.warning("could not tell chat about the failure")


class ConflictLog:
    """Polling error callback: 409 Conflict at most once a minute, other errors as they come."""

    def __init__(self) -> None:
        self._last = 0.0
        self.suppressed = 0

    def __call__(self, error: TelegramError) -> None:
        if isinstance(error, Conflict):
            now = time.monotonic()
            if now - self._last >= CONFLICT_LOG_EVERY:
                extra = f" ({self.suppressed} more since the last warning)" if self._last else ""
                log.warning(
                    "409 Conflict: another process is polling this bot token (a local copy, "
                    "worker=2, or the old dyno during a deploy); polling goes on%s",
                    extra,
                )
                self._last, self.suppressed = now, 0
            else:
                self.suppressed += 1
            return
        log.warning("polling error: %s", error)


async def start_receiving(app: Application, settings: Settings) -> str:
    """Start polling, or the webhook server when WEBHOOK_URL is set; returns the mode."""
    if settings.webhook_url:
        await app.updater.start_webhook(  # type: ignore[union-attr]
            listen="0.0.0.0",
            port=settings.port,
            url_path=WEBHOOK_PATH,
            webhook_url=f"{settings.webhook_url}/{WEBHOOK_PATH}",
            secret_token=settings.effective_webhook_secret(),
            allowed_updates=Update.ALL_TYPES,
        )
        return f"webhook on port {settings.port}"
    await app.updater.start_polling(  # type: ignore[union-attr]
        allowed_updates=Update.ALL_TYPES,
        timeout=dt.timedelta(seconds=25),
        error_callback=ConflictLog(),
    )
    return "long polling"
