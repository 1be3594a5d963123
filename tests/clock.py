"""The one clock tests hand to the code as `clock=`: it stands still until the test moves it."""

from __future__ import annotations

import datetime as dt

from steward import db


class Clock:
    """The time the code under test sees: `now` (the real time at creation unless given), moved
    by `advance(minutes=5)` or by setting `now`."""

    def __init__(self, now: dt.datetime | None = None) -> None:
        self.now = now or db.utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)
