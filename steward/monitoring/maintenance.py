"""Recurring maintenance windows: a check's option `maintenance`, e.g. `sun 02:00-04:00`.

During a window the check runs and its samples are stored, but it alerts as if muted: an outage
still going when the window ends is announced then. Windows are read in TZ. Forms, several
separated by commas: `daily 03:00-03:30`, `weekdays 22:00-23:00`, `sat,sun 01:00-05:00` (day
names mon..sun), and a window may pass midnight (`fri 23:00-01:00` ends Saturday 01:00).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from steward.monitoring.options import ChecksError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
GROUPS = {"daily": tuple(range(7)), "weekdays": tuple(range(5)), "weekends": (5, 6)}
FORM = "like 'sun 02:00-04:00' or 'daily 03:00-03:30'"
_WINDOW = re.compile(r"^\s*([a-z,]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class Window:
    days: tuple[int, ...]  # weekdays the window starts on, Monday 0
    start: dt.time
    end: dt.time

    def length(self) -> dt.timedelta:
        begin = dt.timedelta(hours=self.start.hour, minutes=self.start.minute)
        stop = dt.timedelta(hours=self.end.hour, minutes=self.end.minute)
        return (stop - begin) % dt.timedelta(days=1) or dt.timedelta(days=1)


def parse(text: str, label: str) -> tuple[Window, ...]:
    windows = []
    for part in re.split(r",\s*(?=[a-z,]+\s+\d)", text.strip().lower()):
        match = _WINDOW.match(part)
        if match is None:
            raise ChecksError(f"{label} has the maintenance window {part!r}; expected {FORM}")
        names, h1, m1, h2, m2 = match.groups()
        days: list[int] = []
        for name in names.split(","):
            if name in GROUPS:
                days += GROUPS[name]
            elif name[:3] in DAYS:
                days.append(DAYS.index(name[:3]))
            else:
                raise ChecksError(f"{label} has the day {name!r} in maintenance; expected {FORM}")
        try:
            start, end = dt.time(int(h1), int(m1)), dt.time(int(h2), int(m2))
        except ValueError:
            raise ChecksError(f"{label} has a maintenance time out of range; {FORM}") from None
        windows.append(Window(tuple(sorted(set(days))), start, end))
    return tuple(windows)


def active_until(
    windows: tuple[Window, ...], now: dt.datetime, tz: dt.tzinfo
) -> dt.datetime | None:
    """When the maintenance window `now` is in ends, or None outside every window."""
    here = now.astimezone(tz)
    ends = []
    for window in windows:
        for back in (0, 1):  # a window begun yesterday may still run past midnight
            day = here.date() - dt.timedelta(days=back)
            if day.weekday() not in window.days:
                continue
            began = dt.datetime.combine(day, window.start, tzinfo=tz)
            if began <= here < began + window.length():
                ends.append((began + window.length()).astimezone(dt.UTC))
    return max(ends) if ends else None
