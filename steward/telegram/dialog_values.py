"""What `d.once(...)` may return, and how it is written to the dialog's log and read back.

The log is JSON. The docs tell people to read clocks, random numbers and the database through
`d.once`, so besides JSON values a result may hold datetimes, dates, times and timedeltas, in
lists, tuples (read back as lists) and dicts with string keys; each comes back as what it was.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

_TAGS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$timedelta": lambda seconds: dt.timedelta(seconds=seconds),
}


def to_log(value: Any) -> Any:
    """`value` as JSON; TypeError naming the first part that cannot be logged."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, (list, tuple)):
        return [to_log(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: to_log(item) for key, item in value.items()}
    raise TypeError(
        f"a {type(value).__name__} cannot be kept in a dialog's log: return JSON values, "
        "datetimes, dates, times or timedeltas from d.once(...)"
    )


def from_log(value: Any) -> Any:
    """The value `to_log` was given (tuples come back as lists)."""
    if isinstance(value, list):
        return [from_log(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and (tag := next(iter(value))) in _TAGS:
            return _TAGS[tag](value[tag])
        return {key: from_log(item) for key, item in value.items()}
    return value
