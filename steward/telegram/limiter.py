"""Every request python-telegram-bot makes outside the outbox goes through here.

Replies from command handlers, refusals, answers to button presses: PTB hands each request to
this rate limiter (`ApplicationBuilder().rate_limiter(...)`), which paces messages to a chat
with the outbox's own `FloodControl` (one set of counters for both, so together they keep
Telegram's limits), and retries what the outbox would retry: a 429 after its `retry_after`,
network errors, timeouts and 5xx with the outbox's back-off. Replies are the fast lane: the
outbox leaves room for them (see flood.py). What cannot succeed (400, 403, a bad token) is
raised at once; a reply still failing after REPLY_GIVE_UP seconds is given up with its error.

The outbox's own sends carry `rate_limit_args=OUTBOX` and pass straight through: its sender
has already paced them and retries them from the store.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.ext import BaseRateLimiter

from steward.telegram.flood import FloodControl
from steward.telegram.sinks import DeliveryError, as_delivery_error

log = logging.getLogger("steward.telegram")
OUTBOX = "outbox"  # rate_limit_args of the outbox sender's requests
# Methods that put something into a chat: paced per chat and overall, and retried.
PACED = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendMediaGroup",
        "sendAnimation",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendSticker",
        "sendLocation",
        "sendPoll",
        "copyMessage",
        "forwardMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
    }
)
# Methods retried like a reply but not paced: they put nothing into a chat.
RETRIED = frozenset({"answerCallbackQuery", "setMyCommands", "deleteMyCommands"})
REPLY_GIVE_UP = 60.0  # seconds; a reply later than this is stale (the outbox keeps a day)
ANSWER_GIVE_UP = 10.0  # seconds; Telegram drops a button press's query soon after


class SharedFloodLimiter(BaseRateLimiter[str]):
    """A python-telegram-bot rate limiter over the outbox's flood control."""

    def __init__(
        self,
        flood: FloodControl,
        *,
        backoff: tuple[float, float] = (0.5, 8.0),
        monotonic: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.flood = flood
        self.backoff = backoff
        self.monotonic = monotonic
        self._random = random.Random(seed)

    async def initialize(self) -> None:
        pass  # nothing to open: the counters live in `flood`

    async def shutdown(self) -> None:
        pass

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: str | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        paced = endpoint in PACED and data.get("chat_id") is not None
        if rate_limit_args == OUTBOX or not (paced or endpoint in RETRIED):
            return await callback(*args, **kwargs)
        chat = str(data["chat_id"]) if paced else None
        give_up = self.monotonic() + (REPLY_GIVE_UP if paced else ANSWER_GIVE_UP)
        attempt = 0
        while True:
            attempt += 1
            if chat is not None:
                await self._wait_for_slot(chat)
                self.flood.begin(chat)
            try:
                return await callback(*args, **kwargs)
            except Exception as exc:
                error = as_delivery_error(exc)
                if not isinstance(error, DeliveryError) or error.permanent:
                    raise
                if error.migrate_to is not None:
                    raise  # the handler's chat moved: its next update comes from the new id
                if error.retry_after is not None and chat is not None:
                    self.flood.penalize(chat, error.retry_after)
                    delay = error.retry_after
                elif error.retry_after is not None:
                    delay = error.retry_after
                else:
                    low, high = self.backoff
                    delay = min(high, low * 2 ** (attempt - 1)) * self._random.uniform(0.5, 1.0)
                if self.monotonic() + delay > give_up:
                    log.warning(
                        "%s to %s: gave up after %d tries: %s",
                        endpoint,
                        chat or "-",
                        attempt,
                        error.reason,
                    )
                    raise
                log.info("%s to %s: %s; retry in %.1fs", endpoint, chat or "-", error.reason, delay)
                if chat is None or error.retry_after is None:
                    await asyncio.sleep(delay)  # a flood wait is kept by _wait_for_slot
            finally:
                if chat is not None:
                    self.flood.end(chat)

    async def _wait_for_slot(self, chat: str) -> None:
        """Wait in the fast lane until `chat` may send; the outbox holds back meanwhile."""
        if self.flood.wait(chat, reply=True) <= 0:
            return
        self.flood.replies_waiting += 1
        try:
            while (wait := self.flood.wait(chat, reply=True)) > 0:
                await asyncio.sleep(min(wait, 0.05))
        finally:
            self.flood.replies_waiting -= 1
