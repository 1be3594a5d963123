"""Whether the store answers, and the owner told in the chat when it has not for a while.

Every place that talks to the store in a loop (the scheduler's claims and ticks, the claim loops
of shared checks and training runs, the farm, the outbox sender) reports here: `failed(reason)`
or `answered()`. A store that has failed without a break for `grace` seconds is an outage:

1. the owner's chats get one message straight through the bot (`Bot.send_message`), since the
   outbox, the normal way out, lives in the store that is down. It names this worker, when the
   outage began and the one-line reason, with every secret redacted. A send Telegram refuses
   (or a network error) is logged and tried again at most once every `retry` seconds while the
   outage lasts;
2. when the store answers again, and only if that message went out, one "store back" message is
   queued through the outbox as usual.

A single failed call followed by an answer says nothing. With N workers each worker may say it
once per outage: without the store they have nothing to agree through.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from steward import db

log = logging.getLogger("steward.store")

GRACE = 60.0  # seconds of unbroken failure before the owner is told (STORE_OUTAGE_GRACE)
RETRY = 60.0  # seconds between attempts at a direct send Telegram did not take
SEND_TIMEOUT = 30.0  # a direct send that has not answered by then counts as failed
# A URL's password (`scheme://user:password@host`), should a driver's message carry a DSN.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


class StoreHealth:
    """One worker's view of the store; `attach()` gives it a way to tell the owner."""

    def __init__(
        self,
        worker: str,
        *,
        grace: float = GRACE,
        retry: float = RETRY,
        redact: Callable[[str], str] = lambda text: text,
        clock: Callable[[], dt.datetime] = db.utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.worker, self.grace, self.retry = worker, grace, retry
        self.redact, self.clock, self.monotonic = redact, clock, monotonic
        self.bot: Any = None
        self.outbox: Any = None
        self.chats: tuple[str, ...] = ()
        self.since: dt.datetime | None = None  # when the failing spell began; None when well
        self.reason = ""
        self.told: tuple[dt.datetime, float] | None = None  # (outage began, monotonic start)
        self._began = 0.0  # monotonic time of the spell's first failure
        self._telling: asyncio.Task | None = None
        self._back: asyncio.Task | None = None

    def attach(self, bot: Any, chats: Sequence[str], outbox: Any) -> None:
        """Tell `chats` through `bot` (a python-telegram-bot Bot) directly, and back via
        `outbox`. Without a bot an outage is only logged."""
        self.bot, self.chats, self.outbox = bot, tuple(chats), outbox

    @property
    def failing(self) -> bool:
        return self.since is not None

    # -- reports ---------------------------------------------------------------------------

    def failed(self, reason: str | BaseException) -> None:
        """The store failed a call (call on the event loop)."""
        if isinstance(reason, BaseException):
            from steward.logs import one_line

            reason = one_line(reason)
        self.reason = self._clean(reason)
        if self.since is None:
            self.since, self._began = self.clock(), self.monotonic()
            if self.bot is not None and self.chats:
                self._telling = asyncio.get_running_loop().create_task(
                    self._tell(), name="store-outage"
                )

    def answered(self) -> None:
        """The store took a call (call on the event loop)."""
        if self.since is not None:
            self.since = None
            if self._telling is not None:
                self._telling.cancel()
                self._telling = None
        # Also after a back message that could not be queued: this answer may take it.
        if self.told is not None and (self._back is None or self._back.done()):
            self._back = asyncio.get_running_loop().create_task(
                self._tell_back(), name="store-back"
            )

    # -- telling the owner -----------------------------------------------------------------

    def outage_text(self) -> str:
        since = self.since.strftime("%Y-%m-%d %H:%M:%S UTC") if self.since else "?"
        return (
            f"⚠️ steward worker {self.worker} cannot reach its store since {since}: "
            f"{self.reason or 'no reason given'}. Work waits until it answers; "
            "this message went straight through the bot, not through the outbox."
        )

    async def _tell(self) -> None:
        """Wait out the grace, then send until every chat has it (or the store is back)."""
        await asyncio.sleep(max(0.0, self._began + self.grace - self.monotonic()))
        left = list(self.chats)
        while left and self.since is not None:
            text = self.outage_text()
            for chat in list(left):
                try:
                    await asyncio.wait_for(self._send(chat, text), SEND_TIMEOUT)
                    left.remove(chat)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning(
                        "store outage: cannot tell chat %s directly (%s); trying again in %gs",
                        chat,
                        self.redact(_describe(exc)),
                        self.retry,
                    )
            if len(left) < len(self.chats) and self.told is None:
                self.told = (self.since, self._began)
                log.warning("store outage: the owner was told directly (%s)", self.reason)
            if left:
                await asyncio.sleep(self.retry)

    async def _send(self, chat: str, text: str) -> None:
        from steward.telegram.limiter import OUTBOX

        # Straight to Telegram: the rate limiter's retries would hold the message back, and
        # this loop retries at its own pace.
        limited = getattr(self.bot, "rate_limiter", None) is not None
        extra = {"rate_limit_args": OUTBOX} if limited else {}
        await self.bot.send_message(_chat(chat), text, **extra)

    async def _tell_back(self) -> None:
        """Queue the "store back" message; kept for the next answer if the store fails again."""
        assert self.told is not None
        began, start = self.told
        minutes = max(1, round((self.monotonic() - start) / 60))
        from steward.telegram.formatting import esc

        text = f"✅ steward worker {esc(self.worker)}: the store is back after {minutes} min."
        key = f"store-back:{self.worker}:{began.isoformat()}"
        try:
            await asyncio.to_thread(self._queue, text, key)
        except Exception as exc:
            log.warning("store back, but the message saying so was not queued (%s)", exc)
            return
        self.told = None
        log.info("the store is back after %d min: the owner is told through the outbox", minutes)

    def _queue(self, text: str, key: str) -> None:
        for chat in self.chats:
            self.outbox.notify(text, chat_id=chat, key=f"{key}:{chat}", urgent=True)

    async def aclose(self) -> None:
        for task in (self._telling, self._back):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _clean(self, text: str) -> str:
        line = text.strip().splitlines()[0] if text.strip() else "unknown error"
        return self.redact(_URL_PASSWORD.sub(r"\1***@", line))[:300]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _chat(chat: str) -> int | str:
    return int(chat) if chat.lstrip("-").isdigit() else chat


def worker_name(environ: dict[str, str], fallback: str) -> str:
    """Heroku's dyno name (`worker.1`) when there is one, else `fallback` (host:pid)."""
    return environ.get("DYNO") or fallback
