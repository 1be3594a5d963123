"""Telegram's flood limits as the fake enforces them: per private chat, per group, in all."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from tests.fakes.telegram_http import too_many


class FloodLimits:
    """Sliding-window limits; `admit` either counts a send or raises a 429 with retry_after."""

    def __init__(self, per_chat_interval: float, group_per_minute: int, global_per_second: int):
        self.per_chat_interval = per_chat_interval
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second
        self._lock = threading.Lock()
        self._last_private: dict[int, float] = {}
        self._group_sends: dict[int, deque[float]] = defaultdict(deque)
        self._all_sends: deque[float] = deque()

    def admit(self, chat_id: int, private: bool) -> None:
        now = time.monotonic()
        with self._lock:
            everyone, wait = self._all_sends, 0.0
            while everyone and everyone[0] <= now - 1:
                everyone.popleft()
            if len(everyone) >= self.global_per_second:
                wait = everyone[0] + 1 - now
            recent = self._group_sends[chat_id] if not private else deque()
            while recent and recent[0] <= now - 60:
                recent.popleft()
            if len(recent) >= self.group_per_minute:
                wait = max(wait, recent[0] + 60 - now)
            last = self._last_private.get(chat_id) if private else None
            # 5% tolerance: a client pacing at exactly the interval has timer jitter
            if last is not None and now - last < self.per_chat_interval * 0.95:
                wait = max(wait, last + self.per_chat_interval - now)
            if wait > 0:
                raise too_many(wait)
            everyone.append(now)
            if private:
                self._last_private[chat_id] = now
            else:
                recent.append(now)
