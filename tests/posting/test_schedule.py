"""POST_AT and POST_JITTER: planned times in TZ, a jitter every worker agrees on, /queue."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from steward.config import ConfigError
from steward.posting.commands import render_queue, upcoming
from steward.posting.schedule import Schedule, parse_span, parse_times
from tests.clock import Clock
from tests.posting.helpers import poster, x_env

BERLIN = ZoneInfo("Europe/Berlin")
NOON_UTC = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)  # 13:00 in Berlin


def plan(times="09:00,18:30", jitter="0", tz=BERLIN) -> Schedule:
    return Schedule(dt.timedelta(minutes=30), parse_times(times), parse_span(jitter), tz)


def test_post_at_gives_the_times_of_day_in_tz():
    got = plan().upcoming(NOON_UTC, 3)
    assert [t.astimezone(BERLIN).strftime("%d %H:%M") for t in got] == [
        "04 18:30",
        "05 09:00",
        "05 18:30",
    ]


def test_the_jitter_is_within_its_span_and_the_same_on_every_worker():
    first, again = (
        plan(jitter="10m").upcoming(NOON_UTC, 4),
        plan(jitter="10m").upcoming(NOON_UTC, 4),
    )
    assert first == again
    bases = plan().upcoming(NOON_UTC, 4)
    shifts = [(t - b).total_seconds() for t, b in zip(first, bases, strict=True)]
    assert all(0 <= s <= 600 for s in shifts) and len(set(shifts)) > 1


def test_bad_values_name_the_variable():
    with pytest.raises(ConfigError, match="POST_AT"):
        parse_times("9am")
    with pytest.raises(ConfigError, match="POST_JITTER"):
        parse_span("ten minutes")


def test_the_tick_posts_once_at_each_planned_time_and_not_in_a_burst_after_downtime(engine, fake):
    clock = Clock(dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC))  # 09:00 Berlin
    p = poster(engine, clock, **x_env(fake, POST_AT="09:00,09:05,09:10", TZ="Europe/Berlin"))
    assert p.schedule.planned_here
    for _ in range(8):  # the job looks each minute: 09:00 .. 09:07
        p.scheduled_tick(clock())
        clock.advance(minutes=1)
    assert len(fake.posts) == 2, "09:00 and 09:05, once each"
    clock.advance(hours=1)  # down over 09:10 and more: one late post, not a burst
    p.scheduled_tick(clock())
    p.scheduled_tick(clock())
    assert len(fake.posts) == 3


def test_queue_lists_the_next_planned_times_in_tz(engine, fake):
    clock = Clock(NOON_UTC)
    p = poster(engine, clock, **x_env(fake, POST_AT="18:30", TZ="Europe/Berlin"))
    text = render_queue(upcoming(p, 2), 1, "X", p.settings.tz, "")
    assert "2026-12-04 18:30 CET" in text and "2026-12-05 18:30 CET" in text
