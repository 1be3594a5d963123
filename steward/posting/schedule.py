"""When posts go out: every POST_INTERVAL minutes, or at fixed times of day (POST_AT, in TZ),
each moved by a random jitter (POST_JITTER) so that a bot does not post on the dot.

With POST_AT or POST_JITTER the scheduler's job only looks every minute; the planned times are
computed here, the same on every worker and across restarts (the jitter of a planned time comes
from a hash of it, not from a random draw that a restart would redo). After downtime only the
latest missed time is posted, never a burst of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from steward.config import ConfigError

_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_SPAN = re.compile(r"^(\d+)\s*([smh]?)$")
LOOK = dt.timedelta(minutes=1)  # how often the job looks when times are planned here
LATE = dt.timedelta(hours=2)  # a planned time missed by more than this is skipped


def parse_times(raw: str | None) -> tuple[dt.time, ...]:
    if not raw:
        return ()
    times = []
    for item in (part.strip() for part in raw.split(",") if part.strip()):
        if not (m := _TIME.match(item)):
            raise ConfigError("POST_AT", f"has {item!r}", "times of day like 09:00,18:30")
        times.append(dt.time(int(m.group(1)), int(m.group(2))))
    return tuple(sorted(set(times)))


def parse_span(raw: str | None) -> dt.timedelta:
    if not raw:
        return dt.timedelta(0)
    if not (m := _SPAN.match(raw.strip().lower())):
        raise ConfigError("POST_JITTER", f"is {raw!r}", "a span like 10m, 90s or 1h")
    unit = {"s": "seconds", "h": "hours"}.get(m.group(2), "minutes")
    return dt.timedelta(**{unit: int(m.group(1))})


@dataclass(frozen=True)
class Schedule:
    interval: dt.timedelta
    times: tuple[dt.time, ...]  # POST_AT, local to tz
    jitter: dt.timedelta
    tz: dt.tzinfo

    @property
    def planned_here(self) -> bool:
        """Whether planned times come from here (the job only looks every minute)."""
        return bool(self.times) or self.jitter > dt.timedelta(0)

    def _bases(self, start: dt.datetime, end: dt.datetime):
        """Planned times before jitter, from `start` (UTC) until past `end`, in order."""
        if self.times:
            day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
            while True:
                for t in self.times:
                    base = dt.datetime.combine(day, t, self.tz).astimezone(dt.UTC)
                    if base >= start - self.jitter:
                        yield base
                    if base > end:
                        return
                day += dt.timedelta(days=1)
        else:
            step = self.interval.total_seconds()
            n = int(start.timestamp() // step) - 1
            while True:
                base = dt.datetime.fromtimestamp(n * step, dt.UTC)
                yield base
                if base > end:
                    return
                n += 1

    def moved(self, base: dt.datetime) -> dt.datetime:
        if not self.jitter:
            return base
        digest = hashlib.sha256(base.isoformat().encode()).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64
        return base + dt.timedelta(seconds=share * self.jitter.total_seconds())

    def upcoming(self, after: dt.datetime, n: int) -> list[dt.datetime]:
        out = []
        end = after + dt.timedelta(days=2) + self.interval * n
        for base in self._bases(after, end):
            when = self.moved(base)
            if when > after:
                out.append(when)
            if len(out) >= n:
                break
        return sorted(out)[:n]

    def due(self, now: dt.datetime, last: dt.datetime | None) -> dt.datetime | None:
        """The latest planned time in (last, now] not older than LATE; None when none is."""
        found = None
        for base in self._bases(now - LATE, now):
            when = self.moved(base)
            if now - LATE <= when <= now and (last is None or when > last):
                found = when
        return found


def from_settings(settings) -> Schedule:
    return Schedule(
        interval=dt.timedelta(minutes=settings.post_interval),
        times=parse_times(settings.post_at),
        jitter=parse_span(settings.post_jitter),
        tz=settings.tz,
    )
