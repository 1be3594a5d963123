"""Who may talk to the bot: ALLOWED_USERS in private chats (groups only with ALLOW_GROUPS).

Strangers get one polite refusal that reveals nothing, at most once per user per hour, so the
bot cannot be used to spam anyone; every refused attempt is logged with the user's id.
"""

from __future__ import annotations

import datetime as dt
import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop, ContextTypes

from steward.features import Clock

log = logging.getLogger("steward.access")
REFUSAL = "Sorry, this bot is private."
REFUSE_EVERY = dt.timedelta(hours=1)
PRUNE_AT = 10_000  # remembered refusals before the ones older than REFUSE_EVERY are dropped


class AccessControl:
    def __init__(self, allowed: tuple[int | str, ...], *, allow_groups: bool, clock: Clock):
        self.ids = {u for u in allowed if isinstance(u, int)}
        self.usernames = {u for u in allowed if isinstance(u, str)}
        self.allow_groups = allow_groups
        self.clock = clock
        self._refused: dict[int, dt.datetime] = {}

    def is_allowed(self, user_id: int, username: str | None) -> bool:
        if user_id in self.ids:
            return True
        return bool(username) and username.lower() in self.usernames

    async def gate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Runs before every handler: lets allowed users through, stops everyone else."""
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            raise ApplicationHandlerStop  # channel posts, polls, chat-member updates
        private = chat.type == chat.PRIVATE
        allowed = self.is_allowed(user.id, user.username)
        if allowed and (private or self.allow_groups):
            return
        if not private:
            # A group is not a place to answer strangers, nor to take orders by default.
            log.info("ignored update in %s chat %s from user %s", chat.type, chat.id, user.id)
            raise ApplicationHandlerStop
        log.warning("refused user %s (@%s)", user.id, user.username or "-")
        now = self.clock()
        last = self._refused.get(user.id)
        if last is None or now - last >= REFUSE_EVERY:
            if len(self._refused) >= PRUNE_AT:  # a flood of strangers must not grow it forever
                self._refused = {u: t for u, t in self._refused.items() if now - t < REFUSE_EVERY}
            self._refused[user.id] = now
            if update.callback_query:
                await update.callback_query.answer(REFUSAL)
            elif update.effective_message:
                await update.effective_message.reply_text(REFUSAL)
        raise ApplicationHandlerStop
