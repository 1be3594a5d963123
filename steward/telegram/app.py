"""The python-telegram-bot Application: built for TELEGRAM_API_URL, polling or webhook.

Updates from one chat are handled in order, different chats concurrently (`PerChatProcessor`),
so one slow command never stalls everybody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import Conflict, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    BaseUpdateProcessor,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.request import HTTPXRequest

from steward.config import Settings
from steward.features import Command
from steward.telegram.access import AccessControl
from steward.telegram.flood import FloodControl, FloodLimits
from steward.telegram.limiter import SharedFloodLimiter

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
# PTB waits up to 30 s between polls after repeated errors, so a deploy's 409 storm delayed
# replies by minutes; a conflict is waited out here instead, never longer than this.
CONFLICT_BACKOFF = (0.5, 3.0)  # seconds: first wait, longest wait
SEEN_UPDATES = 1000  # update ids remembered to drop a webhook's repeated deliveries
UNKNOWN_COMMAND = "Unknown command /{name}, see /help."
FALLBACK_GROUP = 1  # answers for commands and buttons no handler of group 0 took


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


def flood_limits(settings: Settings) -> FloodLimits:
    return FloodLimits(
        per_chat_per_second=settings.telegram_rate_per_chat,
        group_per_minute=settings.telegram_rate_per_group,
        global_per_second=settings.telegram_rate_global,
    )


def build_application(settings: Settings, access: AccessControl, router=None) -> Application:
    """The PTB application; its rate limiter's `flood` is the one the outbox sender must use."""
    api = settings.telegram_api_url
    app = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())  # type: ignore[union-attr]
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(PerChatProcessor())
        .connection_pool_size(CONNECTION_POOL_SIZE)
        .pool_timeout(POOL_TIMEOUT)
        .get_updates_request(ConflictWaitingRequest(ConflictLog()))
        .rate_limiter(SharedFloodLimiter(FloodControl(flood_limits(settings))))
        .job_queue(None)  # steward's own scheduler runs the jobs (steward/scheduler.py)
        .build()
    )
    # Handler groups run in order: repeated deliveries stop at -3, strangers at -2, an open
    # dialog takes its chat's messages at -1, and commands (group 0) see the rest.
    app.add_handler(TypeHandler(Update, SeenUpdates().drop_repeats), group=-3)
    app.add_handler(TypeHandler(Update, access.gate), group=-2)
    if router is not None:
        app.add_handler(TypeHandler(Update, router.route), group=-1)
    app.add_error_handler(error_handler(access))
    return app


def add_commands(app: Application, commands: list[Command]) -> None:
    """The commands' handlers, then the answers for what none of them takes (added last)."""
    for command in commands:
        app.add_handler(CommandHandler(command.name, command.callback))
        if command.on_button is not None:
            pattern = f"^{command.name}:"
            app.add_handler(CallbackQueryHandler(command.on_button, pattern=pattern))
    # In a later group, so that handlers added to group 0 by anyone after these still win.
    app.add_handler(MessageHandler(filters.COMMAND, unknown_command), group=FALLBACK_GROUP)
    app.add_handler(CallbackQueryHandler(unhandled_button), group=FALLBACK_GROUP)


def _handled(app: Application, update: Update) -> bool:
    """Whether a command or button handler (group 0) took this update."""
    return any(h.check_update(update) not in (None, False) for h in app.handlers.get(0, ()))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if _handled(context.application, update):
        return
    text = update.effective_message.text or "/"
    name, _, addressee = text.split()[0][1:].partition("@")
    if addressee and addressee.lower() != (context.bot.username or "").lower():
        return  # in a group, a command for another bot
    await update.effective_message.reply_text(UNKNOWN_COMMAND.format(name=name[:32] or "?"))


async def unhandled_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A button nobody handles (an old message's, say): answered, so the client stops waiting."""
    if _handled(context.application, update):
        return
    await update.callback_query.answer("This button no longer does anything.")


async def publish_commands(app: Application, commands: list[Command], access: AccessControl):
    """The full menu in each allowed user's chat; strangers see /start only."""
    menu = [BotCommand(c.name, c.description[:256]) for c in commands]

    async def give_menu(chat_id: int) -> None:
        await app.bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id))

    access.give_menu = give_menu  # for users allowed by @username, at their first message
    try:
        await app.bot.set_my_commands(
            [BotCommand("start", "who I am")], scope=BotCommandScopeDefault()
        )
        for user_id in sorted(access.ids):
            await give_menu(user_id)
    except TelegramError as exc:
        # The menu is a convenience: the bot works without it.
        log.warning("could not publish the command menu: %s", exc)


class SeenUpdates:
    """Drops an update whose id was handled already (Telegram re-delivers webhook updates that
    were not answered in time)."""

    def __init__(self, size: int = SEEN_UPDATES) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    async def drop_repeats(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.update_id in self._ids:
            log.info("update %s arrived again; dropped", update.update_id)
            raise ApplicationHandlerStop
        self._ids[update.update_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)


def error_handler(access: AccessControl):
    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log every handler failure with its update, and tell an allowed user; nobody else."""
        where = "no update"
        if isinstance(update, Update):
            chat = update.effective_chat.id if update.effective_chat else "-"
            user = update.effective_user.id if update.effective_user else "-"
            text = update.effective_message.text if update.effective_message else None
            where = f"update {update.update_id} chat {chat} user {user} text {text!r}"
        if isinstance(context.error, TelegramError):  # the Bot API, not our code: one line
            log.error("handler failed on %s: %s", where, context.error)
        else:
            log.error("handler failed on %s", where, exc_info=context.error)
        if not access.admits(update):
            raise ApplicationHandlerStop  # a stranger's update goes no further, and hears nothing
        if update.callback_query is not None:
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer(SORRY)
        elif update.effective_message is not None:
            try:
                await update.effective_message.reply_text(SORRY)
            except TelegramError:
                log.warning("could not tell chat about the failure")

    return on_error


class ConflictWaitingRequest(HTTPXRequest):
    """getUpdates' requests: a 409 Conflict is logged (ConflictLog) and waited out here, with a
    back-off capped at CONFLICT_BACKOFF, then answered as "no updates" so that PTB's own
    back-off (up to 30 s) never starts."""

    def __init__(self, on_conflict: ConflictLog) -> None:
        super().__init__(connection_pool_size=1)
        self.on_conflict = on_conflict
        self._wait = 0.0

    async def do_request(self, url: str, method: str, request_data=None, **timeouts):
        status, body = await super().do_request(url, method, request_data, **timeouts)
        if status != 409:
            self._wait = 0.0
            return status, body
        low, high = CONFLICT_BACKOFF
        self._wait = min(high, self._wait * 1.5 or low)
        self.on_conflict(Conflict(body.decode(errors="replace")[:200]))
        await asyncio.sleep(self._wait)
        return 200, b'{"ok": true, "result": []}'


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
        from steward.telegram.webhook import WebhookServer

        server = WebhookServer(
            app, settings.port, WEBHOOK_PATH, settings.effective_webhook_secret()
        )
        await server.start(f"{settings.webhook_url}/{WEBHOOK_PATH}")
        app.bot_data["webhook"] = server  # stop_receiving closes it
        return f"webhook on port {settings.port}"
    await app.updater.start_polling(  # type: ignore[union-attr]
        allowed_updates=Update.ALL_TYPES,
        timeout=dt.timedelta(seconds=25),
        error_callback=ConflictLog(),
    )
    return "long polling"


async def stop_receiving(app: Application) -> None:
    """Stop polling, or close the webhook server: no new updates come in."""
    server = app.bot_data.pop("webhook", None)
    if server is not None:
        await server.stop()
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
