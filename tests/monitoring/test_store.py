"""Samples, retention, hourly rollups and conditional alert-state updates on SQLite and Postgres."""

from __future__ import annotations

import datetime as dt

import pytest

from steward import db
from steward.monitoring import store
from steward.monitoring.alerts import ALERTING, AlertState, Sample
from tests.schema_diff import migrated_schema_diff

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
TABLES = [store.samples, store.rollups, store.alerts, db.state]


@pytest.fixture
def engine(store_url):
    eng = db.make_engine(store_url)
    db.metadata.create_all(eng, tables=TABLES)
    yield eng
    eng.dispose()


def test_it_reads_back_samples_of_the_asked_checks_in_time_order(engine):
    store.write_samples(
        engine,
        [
            Sample(T0 + dt.timedelta(minutes=1), "api", "bad", None, {"error": "HTTP 500"}),
            Sample(T0, "api", "ok", 12.5, {"status_code": 200}),
            Sample(T0, "db", "ok", 1.0),
        ],
    )
    got = store.read_samples(engine, ["api"], T0)
    assert list(got) == ["api"]
    assert [(s.time, s.status, s.value, s.details) for s in got["api"]] == [
        (T0, "ok", 12.5, {"status_code": 200}),
        (T0 + dt.timedelta(minutes=1), "bad", None, {"error": "HTTP 500"}),
    ]
    assert store.last_sample(engine, "api").status == "bad"


def test_cleanup_drops_raw_samples_past_the_retention(engine):
    now = T0 + dt.timedelta(days=40)
    store.write_samples(
        engine,
        [Sample(now - dt.timedelta(days=d), "api", "ok", float(d)) for d in (1, 29, 31, 39)],
    )
    while store.roll_up(engine, now):  # 40 days of hours take several bounded runs
        pass
    assert store.cleanup(engine, now, retention_days=30) == 2
    assert [s.value for s in store.read_samples(engine, ["api"], T0)["api"]] == [29.0, 1.0]


def test_cleanup_keeps_old_samples_whose_hours_are_not_rolled_up_yet(engine):
    now = T0 + dt.timedelta(days=40)
    store.write_samples(engine, [Sample(now - dt.timedelta(days=35), "api", "ok", 1.0)])
    assert store.cleanup(engine, now, retention_days=30) == 0
    store.roll_up(engine, now)  # the first 72 hours: the sample's hour among them
    assert store.cleanup(engine, now, retention_days=30) == 1


def test_it_rolls_complete_hours_up_into_min_mean_max_count_and_bad(engine):
    minute = dt.timedelta(minutes=1)
    batch = [Sample(T0 + i * minute, "api", "ok", float(i)) for i in range(60)]
    batch += [Sample(T0 + 5 * minute, "api", "bad", None)]
    batch += [Sample(T0 + 61 * minute, "api", "ok", 100.0)]  # the next, unfinished hour
    batch += [Sample(T0 + 10 * minute, "db", "bad", None)]
    store.write_samples(engine, batch)
    assert store.roll_up(engine, T0 + 75 * minute) == 1
    rolled = store.read_rollups(engine, ["api", "db"], T0)
    assert rolled["api"] == [store.Rollup(T0, 61, 1, 0.0, 29.5, 59.0)]
    assert rolled["db"] == [store.Rollup(T0, 1, 1, None, None, None)]
    # Nothing new is complete: a second run does nothing; the next hour is done once it ends.
    assert store.roll_up(engine, T0 + 80 * minute) == 0
    assert store.roll_up(engine, T0 + 125 * minute) == 1
    assert store.read_rollups(engine, ["api"], T0)["api"][1].mean == 100.0


def test_rollups_catch_up_a_gap_and_keep_counting_after_cleanup(engine):
    store.write_samples(engine, [Sample(T0, "api", "ok", 1.0)])
    later = T0 + dt.timedelta(days=5)
    assert store.roll_up(engine, later) == store.ROLLUP_HOURS_PER_RUN
    assert store.roll_up(engine, later) == 5 * 24 - store.ROLLUP_HOURS_PER_RUN
    store.write_samples(engine, [Sample(later, "api", "ok", 2.0)])
    store.cleanup(engine, later + dt.timedelta(days=1), retention_days=1)
    assert store.roll_up(engine, later + dt.timedelta(hours=2)) == 2
    assert [r.mean for r in store.read_rollups(engine, ["api"], T0)["api"]] == [1.0, 2.0]


def test_of_two_writers_from_the_same_state_only_one_wins(engine):
    fresh = AlertState(check="api")
    first = AlertState(check="api", state=ALERTING, alert_key="alert:api:1")
    assert store.save_state(engine, fresh, first, T0) is True
    assert store.save_state(engine, fresh, first, T0) is False  # the row exists now
    stored = store.load_states(engine, ["api"])["api"]
    assert (stored.state, stored.version, stored.alert_key) == (ALERTING, 1, "alert:api:1")
    second = AlertState(check="api", state="OK", version=1)
    assert store.save_state(engine, stored, second, T0) is True
    assert store.save_state(engine, stored, second, T0) is False  # version 1 is gone
    assert store.load_states(engine, ["api"])["api"].version == 2


def test_record_writes_samples_and_applies_only_current_steps(engine):
    store.save_state(engine, AlertState(check="db"), AlertState(check="db"), T0)
    stale = AlertState(check="db", version=7)
    won = store.record(
        engine,
        [Sample(T0, "api", "ok", 1.0), Sample(T0, "db", "ok", 2.0)],
        [(AlertState(check="api"), AlertState(check="api")), (stale, stale)],
        T0,
    )
    assert won == {"api"}
    assert len(store.read_samples(engine, ["api", "db"], T0)["db"]) == 1


def test_a_mute_survives_steps_and_does_not_move_the_version(engine):
    until = T0 + dt.timedelta(hours=2)
    store.set_mute(engine, "api", until, T0)
    state = store.load_states(engine, ["api"])["api"]
    assert (state.muted_until, state.version) == (until, 1)
    store.save_state(engine, state, AlertState(check="api", state=ALERTING, version=1), T0)
    assert store.load_states(engine)["api"].muted_until == until
    store.set_mute(engine, "api", None, T0)
    state = store.load_states(engine)["api"]
    assert (state.muted_until, state.version, state.state) == (None, 2, ALERTING)


def test_the_watched_checks_table_has_the_shape_of_its_migration(store_url):
    diff = migrated_schema_diff(store_url, compare_type=True)
    assert [d for d in diff if "watched_checks" in repr(d)] == []


def test_a_watched_check_is_stored_once_and_removed_with_its_history(engine):
    db.metadata.create_all(engine, tables=[store.watched_checks])
    options = {"url": "https://example.com", "interval": 30}
    assert store.add_watched(engine, "web", "http", options, "1001", 42, T0)
    assert not store.add_watched(engine, "web", "tcp", {}, None, None, T0), "one per name"
    (row,) = store.read_watched(engine)
    assert (row.name, row.kind, row.options, row.chat_id, row.created_by, row.created_at) == (
        "web",
        "http",
        options,
        "1001",
        42,
        T0,
    )
    store.write_samples(engine, [Sample(T0, "web", "ok", 1.0), Sample(T0, "api", "ok", 2.0)])
    store.set_mute(engine, "web", T0 + dt.timedelta(hours=1), T0)
    assert store.remove_watched(engine, "web")
    assert not store.remove_watched(engine, "web")
    assert store.read_watched(engine) == []
    got = store.read_samples(engine, ["web", "api"], T0)
    assert got["web"] == [] and [s.value for s in got["api"]] == [2.0]
    assert store.load_states(engine, ["web"])["web"].muted_until is None
