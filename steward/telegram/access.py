"""Who may talk to the bot: ALLOWED_USERS in private chats (groups only with ALLOW_GROUPS).

The gate runs before every other handler and is fail-closed: it decides without any network
call, and whatever goes wrong while deciding (or later, while refusing) the update stops there.
A stranger's refusal is sent apart from the decision, in a task of its own, so a refusal that
meets a 429, a 5xx or a timeout cannot let the update through.

Strangers get one short refusal that reveals nothing, at most once per user per hour (the
memory is in the store, so a restart does not reset it), and no more than REFUSALS_PER_MINUTE
in all, so that a crowd of strangers can neither spend the bot's flood budget nor use it to
spam anyone. Every refused attempt is logged with the user's id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from steward import db
from steward.features import Clock
from steward.telegram.store import telegram_refusals

log = logging.getLogger("steward.access")
REFUSAL = "Sorry, this bot is private."
REFUSE_EVERY = dt.timedelta(hours=1)
REFUSALS_PER_MINUTE = 20  # over all strangers; the rest are logged, not answered
PRUNE_EVERY = 500  # refusals between deletions of the ones older than REFUSE_EVERY


class RefusalMemory:
    """When each stranger was last refused, in the store (survives restarts, shared by workers)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._since_prune = 0

    def claim(self, user_id: int, now: dt.datetime) -> bool:
        """True if `user_id` may be refused now (and records it); False within the hour."""
        t = telegram_refusals
        cutoff = now - REFUSE_EVERY
        with self.engine.begin() as conn:
            # One statement: two workers refusing one new stranger at once get one True.
            old = t.c.refused_at <= cutoff
            if not db.upsert(conn, t, {"user_id": user_id}, refused_at=now, only_if=old):
                return False  # refused within the hour
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            with self.engine.begin() as conn:
                conn.execute(sa.delete(t).where(t.c.refused_at <= cutoff))
        return True


class AccessControl:
    def __init__(
        self,
        allowed: tuple[int | str, ...],
        *,
        allow_groups: bool,
        clock: Clock,
        engine: Engine,
        monotonic=time.monotonic,
    ):
        self.ids = {u for u in allowed if isinstance(u, int)}
        self.usernames = {u.lower() for u in allowed if isinstance(u, str)}
        self.allow_groups = allow_groups
        self.clock = clock
        self.monotonic = monotonic
        self.memory = RefusalMemory(engine)
        self._recent: deque[float] = deque()  # monotonic times of the last minute's refusals
        self._capped = 0  # strangers not answered since the last "cap reached" line
        self._capped_logged = -60.0
        self._tasks: set[asyncio.Task] = set()
        # Publishes the command menu in one chat (set by app.publish_commands): users allowed
        # by @username get theirs on their first message, their id being unknown before.
        self.give_menu: Callable[[int], Awaitable] | None = None
        self._menu_given: set[int] = set()

    def is_allowed(self, user_id: int, username: str | None) -> bool:
        if user_id in self.ids:
            return True
        return bool(username) and username.lower() in self.usernames

    def admits(self, update: object) -> bool:
        """True only for an update from an allowed user in a chat where they may give orders."""
        if not isinstance(update, Update):
            return False
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return False
        private = chat.type == chat.PRIVATE
        return self.is_allowed(user.id, user.username) and (private or self.allow_groups)

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Runs before every handler: lets allowed users through, stops everything else."""
        try:
            if self.admits(update):
                self._menu_for_username_user(update)
                return
            self._turn_away(update)
        except Exception:
            # Fail closed: a gate that cannot decide lets nothing through.
            log.exception("access gate failed on update %s; dropped", _update_id(update))
        raise ApplicationHandlerStop

    def _menu_for_username_user(self, update: Update) -> None:
        user_id = update.effective_user.id
        if user_id in self.ids or user_id in self._menu_given or self.give_menu is None:
            return
        if update.effective_chat.type != update.effective_chat.PRIVATE:
            return
        self._menu_given.add(user_id)
        self._spawn(self._give_menu(user_id))

    async def _give_menu(self, user_id: int) -> None:
        try:
            await self.give_menu(user_id)
        except Exception as exc:
            log.warning("could not publish the command menu for user %s: %s", user_id, _short(exc))

    def _turn_away(self, update: Update) -> None:
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return  # channel posts, polls, chat-member updates: nobody to answer
        if chat.type != chat.PRIVATE:
            # A group is not a place to answer strangers, nor to take orders by default.
            log.info("ignored update in %s chat %s from user %s", chat.type, chat.id, user.id)
            if update.callback_query is not None:
                self._spawn(self._answer_button(update, None))
            return
        log.warning("refused user %s (@%s)", user.id, user.username or "-")
        if update.message is not None or update.callback_query is not None:
            # Only what a person typed or pressed is answered (not edits, blocks, reactions).
            self._spawn(self._refuse(update, user.id, chat.id))

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _within_cap(self) -> bool:
        now = self.monotonic()
        while self._recent and self._recent[0] <= now - 60:
            self._recent.popleft()
        if len(self._recent) < REFUSALS_PER_MINUTE:
            self._recent.append(now)
            return True
        self._capped += 1
        if now - self._capped_logged >= 60:
            log.warning(
                "more than %d strangers a minute: %d not answered (still refused)",
                REFUSALS_PER_MINUTE,
                self._capped,
            )
            self._capped, self._capped_logged = 0, now
        return False

    async def _refuse(self, update: Update, user_id: int, chat_id: int) -> None:
        """One refusal, if this stranger had none this hour and the global cap allows it."""
        try:
            fresh = await asyncio.to_thread(self.memory.claim, user_id, self.clock())
            text = REFUSAL if fresh and self._within_cap() else None
            if update.callback_query is not None:
                await self._answer_button(update, text)  # a toast; the spinner stops either way
            elif text is not None:
                await update.get_bot().send_message(chat_id, text)
        except Exception as exc:
            log.warning("could not refuse user %s: %s", user_id, _short(exc))

    async def _answer_button(self, update: Update, text: str | None) -> None:
        try:
            await update.callback_query.answer(text)
        except Exception as exc:
            log.warning("could not answer a stranger's button press: %s", _short(exc))


def _update_id(update: object) -> object:
    return getattr(update, "update_id", "-")


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
