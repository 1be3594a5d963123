"""Uptime over 24 h, 7 d and 30 d, from rollups and raw samples alike, in /check and /checks."""

from __future__ import annotations

import datetime as dt

import pytest

from steward import db
from steward.monitoring import store
from steward.monitoring.alerts import AlertState, Sample
from steward.monitoring.messages import checks_pages, render_result
from steward.monitoring.spec import parse_checks
from steward.monitoring.uptime import summary, uptime

NOW = dt.datetime(2026, 3, 30, 12, 0, tzinfo=dt.UTC)
(API,) = parse_checks("api=https://a.example")


@pytest.fixture
def engine(sqlite_url):
    eng = db.make_engine(sqlite_url)
    db.metadata.create_all(eng, tables=[store.samples, store.rollups, db.state])
    yield eng
    eng.dispose()


@pytest.mark.parametrize("rolled", [False, True])
def test_uptime_counts_bad_samples_over_each_window(engine, rolled):
    # Ten days of a sample every 10 minutes: down one hour three days ago, 30 min an hour ago.
    batch, at = [], NOW - dt.timedelta(days=10)
    outage = (NOW - dt.timedelta(days=3), NOW - dt.timedelta(days=3, hours=-1))
    recent = (NOW - dt.timedelta(minutes=60), NOW - dt.timedelta(minutes=30))
    while at < NOW:
        bad = outage[0] <= at < outage[1] or recent[0] <= at < recent[1]
        batch.append(Sample(at, "api", "bad" if bad else "ok", 1.0))
        at += dt.timedelta(minutes=10)
    store.write_samples(engine, batch)
    while rolled and store.roll_up(engine, NOW):
        pass
    got = uptime(engine, ["api", "never"], NOW)["api"]
    assert got["24h"] == pytest.approx(100 * (144 - 3) / 144)
    assert got["7d"] == pytest.approx(100 * (1008 - 9) / 1008)
    assert got["30d"] == pytest.approx(100 * (1440 - 9) / 1440)  # ten days of samples
    assert summary(got) == "97.9% 24h · 99.11% 7d · 99.38% 30d"
    assert uptime(engine, ["never"], NOW)["never"] == {"24h": None, "7d": None, "30d": None}


def test_check_and_checks_show_the_uptime():
    sample = Sample(NOW, "api", "ok", 120.0, {"status_code": 200})
    values = {"24h": 100.0, "7d": 99.5, "30d": 99.95}
    text = render_result(sample, API, dt.UTC, values)
    assert "uptime 100% 24h · 99.50% 7d · 99.95% 30d" in text
    state = AlertState("api", last_status="ok", last_value=120.0, since=NOW)
    (page,) = checks_pages([API], {"api": state}, dt.UTC, NOW, uptimes={"api": values})
    assert page.endswith(", 100% 24h")


def test_a_chart_panel_says_the_uptime_over_its_window(engine):
    from steward.monitoring import charts

    batch = [
        Sample(NOW - dt.timedelta(minutes=m), "api", "bad" if m < 3 else "ok", 1.0)
        for m in range(60, 0, -1)
    ]
    store.write_samples(engine, batch)
    (panel,) = charts.panels(engine, [API], charts.WINDOWS["hour"], NOW)
    assert panel.title == "api: 96.7% up"
