"""Telegram's flood limits as arithmetic: when may the next message to a chat go out.

Telegram allows about one message per second in a private chat, 20 per minute in a group,
supergroup or channel, and 30 per second over all chats
(https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this).

The limits are judged by Telegram on its own clock, when a request arrives. We only know that
the arrival lay between our send and our receipt of the answer, so every finished send counts
at the time its answer came back (never earlier than Telegram saw it), and a send still in
flight counts as happening "now" in every window. That makes the schedule safe whatever the
network latency, at the cost of one round trip per window. A small margin covers clock jitter.

Two lanes share these limits: direct replies (steward/telegram/limiter.py) and the outbox
(sender.py). Replies are the fast lane: while replies wait for a slot, the outbox counts them as
already taking their share of the global window, so a busy outbox never starves a reply.

Pure: no I/O, the clock is injected (monotonic seconds), and nothing here sleeps.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

INFINITY = float("inf")


@dataclass(frozen=True)
class FloodLimits:
    per_chat_per_second: float = 1.0  # any one chat
    group_per_minute: int = 20  # groups, supergroups and channels, sliding 60-second window
    global_per_second: int = 30  # all chats together, sliding 1-second window
    margin: float = 0.02  # seconds added to every interval and window


def is_group(chat_id: str | int) -> bool:
    """Groups and channels have negative ids, or are addressed by @username (channels)."""
    text = str(chat_id)
    return text.startswith("-") or text.startswith("@")


@dataclass
class _Chat:
    last_done: float = -INFINITY
    window: deque[float] = field(default_factory=deque)  # answer times, groups only
    in_flight: int = 0
    blocked_until: float = -INFINITY


class FloodControl:
    """Tracks sends and answers when each chat may send next (monotonic seconds)."""

    def __init__(self, limits: FloodLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._chats: dict[str, _Chat] = {}
        self._window: deque[float] = deque()  # answer times over all chats
        self._in_flight = 0
        self._blocked_until = -INFINITY
        self.replies_waiting = 0  # replies queued for a slot: the outbox leaves them room

    def _chat(self, chat_id: str | int) -> _Chat:
        return self._chats.setdefault(str(chat_id), _Chat())

    def earliest(self, chat_id: str | int, *, reply: bool = False) -> float:
        """The first moment a new message to `chat_id` may be sent (inf while one is in flight).

        `reply`: the fast lane; otherwise waiting replies count as sends in flight."""
        lim, chat = self.limits, self._chat(chat_id)
        if chat.in_flight:
            return INFINITY
        # The per-chat interval applies to groups as well (Telegram advises it for every chat).
        when = max(
            self._blocked_until,
            chat.blocked_until,
            chat.last_done + 1.0 / lim.per_chat_per_second + lim.margin,
        )
        if is_group(chat_id):
            when = max(when, _window_start(chat.window, 0, lim.group_per_minute, 60.0, lim.margin))
        held = self._in_flight + (0 if reply else self.replies_waiting)
        return max(when, _window_start(self._window, held, lim.global_per_second, 1.0, lim.margin))

    def wait(self, chat_id: str | int, *, reply: bool = False) -> float:
        """Seconds from now until `chat_id` may send (0 when it may send at once)."""
        return max(0.0, self.earliest(chat_id, reply=reply) - self.clock())

    def begin(self, chat_id: str | int) -> None:
        """A request to `chat_id` is about to leave."""
        self._chat(chat_id).in_flight += 1
        self._in_flight += 1

    def end(self, chat_id: str | int) -> None:
        """Its answer (any answer, or none) came back: count it as sent now."""
        now = self.clock()
        chat = self._chat(chat_id)
        chat.in_flight = max(0, chat.in_flight - 1)
        self._in_flight = max(0, self._in_flight - 1)
        chat.last_done = now
        if is_group(chat_id):
            _push(chat.window, now, self.limits.group_per_minute)
        _push(self._window, now, self.limits.global_per_second)

    def cancel(self, chat_id: str | int) -> None:
        """A reserved request never left (another sender claimed the row first)."""
        chat = self._chat(chat_id)
        chat.in_flight = max(0, chat.in_flight - 1)
        self._in_flight = max(0, self._in_flight - 1)

    def penalize(self, chat_id: str | int, retry_after: float) -> None:
        """Telegram answered 429 with retry_after: this chat waits that long.

        The answer does not say which limit was hit. The pace kept here stays under the global
        limit, so a flood wait is taken to concern the chat that received it.
        """
        chat = self._chat(chat_id)
        chat.blocked_until = max(chat.blocked_until, self.clock() + retry_after)

    def pause_all(self, seconds: float) -> None:
        """Hold every chat (for a flood wait known to be global)."""
        self._blocked_until = max(self._blocked_until, self.clock() + seconds)

    def forget(self, chat_id: str | int) -> None:
        """Drop an idle chat's history once it can no longer constrain anything."""
        chat = self._chats.get(str(chat_id))
        if chat is None or chat.in_flight:
            return
        now = self.clock()
        if chat.blocked_until < now and chat.last_done < now - 60.0 - self.limits.margin:
            del self._chats[str(chat_id)]


def _push(window: deque[float], at: float, size: int) -> None:
    window.append(at)
    while len(window) > size:
        window.popleft()


def _window_start(
    done: deque[float], in_flight: int, allowed: int, span: float, margin: float
) -> float:
    """Earliest time one more send keeps at most `allowed` sends within any `span` seconds.

    Sends in flight count as happening at the moment of the new send; finished ones at their
    answer time. With k = allowed - in_flight free slots, the k-th most recent finished send
    must be more than `span` old.
    """
    free = allowed - in_flight
    if free <= 0:
        return INFINITY
    if len(done) < free:
        return -INFINITY
    return done[-free] + span + margin
