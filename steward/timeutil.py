"""Durations as people type and read them: `90s`, `30m`, `2h`, `1d`, `1h30m`."""

from __future__ import annotations

import datetime as dt
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|w)", re.IGNORECASE)
_UNIT = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """Parse `30m`, `2h`, `1h30m`, `45` (minutes); raise ValueError with a sentence otherwise."""
    raw = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+", raw):
        return dt.timedelta(minutes=int(raw))
    seconds, pos = 0.0, 0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT[match.group(2).lower()]
        pos = match.end()
    if not raw or pos != len(raw) or seconds <= 0:
        raise ValueError(f"{text!r} is not a duration; use forms like 30m, 2h, 1d or 1h30m")
    return dt.timedelta(seconds=seconds)


MUTE_LONGEST = dt.timedelta(days=30)


class MuteTooLong(ValueError):
    """A mute asked for longer than MUTE_LONGEST (a huge number included)."""


def parse_mute(text: str) -> dt.timedelta:
    """A mute's length, for the chat's `/mute 2h` and a check's `/mute api 2h`: parse_duration's
    forms, at most MUTE_LONGEST. ValueError with a sentence for what is not a duration,
    MuteTooLong for what is longer (however long: no OverflowError)."""
    try:
        length = parse_duration(text)
    except OverflowError:  # more days than a timedelta can hold
        length = MUTE_LONGEST * 2
    if length > MUTE_LONGEST:
        raise MuteTooLong(f"A mute lasts at most {MUTE_LONGEST.days} days")
    return length


def human(delta: dt.timedelta) -> str:
    """`1h 5m`, `3d 2h`, `45s`: the two largest units."""
    total = int(abs(delta.total_seconds()))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])


def local(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """A moment in the user's time zone, e.g. `2026-11-23 14:05 CET`."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z").strip()
