"""Monitoring charts: which data each window draws, and what gets shaded as bad."""

from __future__ import annotations

import datetime as dt

import pytest

from steward import db
from steward.monitoring import charts, store
from steward.monitoring.alerts import Sample
from steward.monitoring.spec import parse_checks

NOW = dt.datetime(2026, 3, 8, 12, 20, tzinfo=dt.UTC)
FIVE_MIN = dt.timedelta(minutes=5)
(API,) = parse_checks("api=https://a.example alert_above=800 clear_below=500")


@pytest.fixture
def engine(sqlite_url):
    eng = db.make_engine(sqlite_url)
    db.metadata.create_all(eng, tables=[store.samples, store.rollups, db.state])
    yield eng
    eng.dispose()


def fill(engine, since: dt.datetime, bad: tuple[dt.datetime, dt.datetime] | None = None) -> int:
    """5-minute samples of "api" from `since` to NOW, bad (value 900) inside `bad`."""
    batch, at = [], since
    while at <= NOW:
        is_bad = bad is not None and bad[0] <= at < bad[1]
        batch.append(Sample(at, "api", "bad" if is_bad else "ok", 900.0 if is_bad else 100.0))
        at += FIVE_MIN
    store.write_samples(engine, batch)
    while store.roll_up(engine, NOW):
        pass
    return len(batch)


def test_the_week_view_draws_rolled_up_hours_and_the_hour_not_rolled_up_yet(engine):
    fill(engine, NOW - dt.timedelta(days=6, minutes=20))
    (panel,) = charts.panels(engine, [API], charts.WINDOWS["week"], NOW)
    hours = 6 * 24  # complete hours from 12:00 six days ago to 12:00 today
    recent = 5  # 12:00, 12:05 ... 12:20, not rolled up yet
    assert len(panel.times) == hours + recent
    assert panel.times[0] == NOW.replace(minute=30) - dt.timedelta(days=6)  # an hour's middle
    assert panel.times[-1] == NOW
    assert panel.rollup_min is not None and panel.rollup_max is not None
    assert panel.band == (None, 800.0)


def test_the_week_view_shades_the_hours_an_outage_touched(engine):
    began = dt.datetime(2026, 3, 5, 10, 10, tzinfo=dt.UTC)
    fill(engine, NOW - dt.timedelta(days=6), bad=(began, began + dt.timedelta(hours=2)))
    (panel,) = charts.panels(engine, [API], charts.WINDOWS["week"], NOW)
    # Bad from 10:10 to 12:05: the hours 10, 11 and 12 as one stretch.
    assert list(panel.shade) == [(began.replace(minute=0), began.replace(hour=13, minute=0))]


def test_an_outage_still_going_on_is_shaded_up_to_its_last_sample(engine):
    began = NOW - dt.timedelta(minutes=50)  # 11:30, into the hour not rolled up yet
    fill(engine, NOW - dt.timedelta(days=4), bad=(began, NOW + FIVE_MIN))
    (panel,) = charts.panels(engine, [API], charts.WINDOWS["week"], NOW)
    assert list(panel.shade) == [
        (began.replace(minute=0), NOW.replace(minute=0)),  # the 11 o'clock hour, rolled up
        (NOW.replace(minute=0), NOW),  # samples of this hour
    ]


def test_the_hour_view_shades_exactly_the_bad_samples(engine):
    began = NOW - dt.timedelta(minutes=30)
    fill(engine, NOW - dt.timedelta(hours=2), bad=(began, began + dt.timedelta(minutes=10)))
    (panel,) = charts.panels(engine, [API], charts.WINDOWS["hour"], NOW)
    assert panel.rollup_min is None
    assert list(panel.shade) == [(began, began + dt.timedelta(minutes=10))]


def test_a_week_chart_is_a_phone_width_png_well_under_telegrams_photo_size(engine):
    fill(engine, NOW - dt.timedelta(days=7))
    png = charts.render(engine, [API], charts.WINDOWS["week"], NOW, dt.UTC, "last week")
    assert png.startswith(b"\x89PNG")
    width = int.from_bytes(png[16:20], "big")
    assert width == 800
    assert len(png) < 150_000
