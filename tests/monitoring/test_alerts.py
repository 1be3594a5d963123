"""The alert state machine, fed sequences of samples: what it announces, and when."""

from __future__ import annotations

import datetime as dt

from steward.monitoring.alerts import (
    ALERTING,
    OK,
    PENDING,
    UNKNOWN,
    AlertState,
    Rules,
    Sample,
    step,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


DEFAULT = Rules()


def feed(sequence, rules=DEFAULT, state=None, start=T0, every=MINUTE):
    """Feed samples one a minute. Items: "ok", "bad", "unknown" or a number (an ok sample's
    value). Returns the final state and every event as (minute, kind)."""
    state = state or AlertState(check="api")
    events = []
    for i, item in enumerate(sequence):
        at = start + i * every
        if isinstance(item, str):
            sample = Sample(at, "api", item, None, {"error": "boom"} if item == "bad" else {})
        else:
            sample = Sample(at, "api", "ok", float(item))
        state, new = step(state, sample, rules, at)
        events += [(i, e) for e in new]
    return state, events


def kinds(events):
    return [(i, e.kind) for i, e in events]


def test_it_alerts_once_after_fail_threshold_bad_samples_in_a_row():
    state, events = feed(["ok", "bad", "bad", "bad", "bad", "bad"])
    assert kinds(events) == [(3, "alert")]
    alert = events[0][1]
    assert alert.since == T0 + MINUTE  # the outage began with the first bad sample
    assert alert.key == f"alert:api:{(T0 + MINUTE).isoformat()}"
    assert state.state == ALERTING and state.alert_key == alert.key


def test_it_goes_pending_first_and_back_to_ok_without_a_word():
    state, events = feed(["bad", "bad", "ok", "bad", "ok", "bad", "bad", "ok"])
    assert events == []
    assert state.state == OK
    state, _ = feed(["bad"], state=state)
    assert state.state == PENDING


def test_a_flapping_check_alerts_once_and_recovers_once():
    sequence = ["bad"] * 3 + ["ok", "bad", "ok", "bad", "ok", "bad"] + ["ok", "ok", "ok"]
    state, events = feed(sequence)
    assert kinds(events) == [(2, "alert"), (10, "recovered")]
    recovered = events[1][1]
    assert recovered.reply_to == events[0][1].key
    # Down from the first bad sample (minute 0) to the first good one that stuck (minute 9).
    assert recovered.duration == 9 * MINUTE
    assert state.state == OK and state.alert_key is None


def test_it_uses_the_configured_thresholds():
    rules = Rules(fail_threshold=1, ok_threshold=3)
    _, events = feed(["bad", "ok", "ok", "bad", "ok", "ok", "ok"], rules)
    assert kinds(events) == [(0, "alert"), (6, "recovered")]


def test_a_value_band_has_hysteresis():
    rules = Rules(alert_above=10, clear_below=3)
    # From OK, values between the lines are fine; above 10 three times is an alert.
    _, events = feed([5, 9, 5, 12, 12, 12], rules)
    assert kinds(events) == [(5, "alert")]
    # Once alerting, values between the lines keep it alerting; once below 3 they are fine.
    state, events = feed([12, 12, 12, 5, 8, 4, 2, 5, 12], rules)
    assert kinds(events) == [(2, "alert"), (7, "recovered")]
    assert (state.state, state.band) == (PENDING, "high")  # the last 12 starts over


def test_a_low_band_mirrors_the_high_one():
    rules = Rules(alert_below=100, clear_above=200, fail_threshold=2)
    _, events = feed([150, 90, 80, 150, 150, 250, 250], rules)
    assert kinds(events) == [(2, "alert"), (6, "recovered")]


def test_a_band_without_a_clear_line_clears_at_the_alert_line():
    _, events = feed([11, 11, 11, 10, 9], Rules(alert_above=10))
    assert kinds(events) == [(2, "alert"), (4, "recovered")]
    _, events = feed([9, 9, 9, 10, 10, 10], Rules(alert_below=10))
    assert kinds(events) == [(2, "alert"), (4, "recovered")]


def test_a_check_that_cannot_evaluate_is_announced_once_as_unknown():
    state, events = feed(["ok"] + ["unknown"] * 10)
    assert kinds(events) == [(3, "unknown")]
    assert state.state == UNKNOWN
    state, more = feed(["ok", "ok"], state=state, start=T0 + 11 * MINUTE)
    assert kinds(more) == [(1, "known")]
    assert more[0][1].reply_to == events[0][1].key
    assert state.state == OK


def test_unknown_samples_neither_break_nor_end_an_outage():
    _, events = feed(["bad", "unknown", "bad", "unknown", "bad"])
    assert kinds(events) == [(4, "alert")]
    state, events = feed(["bad"] * 3 + ["unknown"] * 20)
    assert kinds(events) == [(2, "alert")]
    assert state.state == ALERTING


def test_an_unknown_check_that_turns_bad_alerts_as_down():
    _, events = feed(["unknown"] * 3 + ["bad"] * 3)
    assert kinds(events) == [(2, "unknown"), (5, "alert")]


def test_it_renotifies_every_renotify_while_still_down():
    rules = Rules(renotify=dt.timedelta(hours=1))
    _, events = feed(["bad"] * 150, rules)  # alert at minute 2, still down 2.5 hours later
    assert kinds(events) == [(2, "alert"), (62, "still_down"), (122, "still_down")]
    still = events[1][1]
    assert still.since == T0
    assert still.key != events[2][1].key


def test_it_never_renotifies_when_renotify_is_off():
    _, events = feed(["bad"] * 200, Rules(renotify=None))
    assert kinds(events) == [(2, "alert")]


def test_a_muted_check_is_silent_and_announces_an_outage_once_the_mute_is_over():
    muted = AlertState(check="api", muted_until=T0 + 10 * MINUTE)
    state, events = feed(["bad"] * 15, state=muted)
    assert kinds(events) == [(10, "alert")]
    assert events[0][1].since == T0
    # A recovery while muted is not announced either.
    muted = AlertState(check="api", muted_until=T0 + 10 * MINUTE)
    _, events = feed(["bad"] * 3 + ["ok"] * 3, state=muted)
    assert events == []


def test_the_state_remembers_the_last_sample():
    state, _ = feed([4, 7])
    assert (state.last_status, state.last_value, state.last_at) == ("ok", 7.0, T0 + MINUTE)


def test_an_announced_outage_that_ends_during_a_mute_still_says_recovered():
    import dataclasses

    state, events = feed(["bad"] * 3)
    assert kinds(events) == [(2, "alert")]
    state = dataclasses.replace(state, muted_until=T0 + 60 * MINUTE)
    _, events = feed(["ok"] * 2, state=state, start=T0 + 3 * MINUTE)
    assert kinds(events) == [(1, "recovered")]
    assert events[0][1].reply_to == f"alert:api:{T0.isoformat()}"


def test_a_blind_spell_that_began_during_a_mute_is_announced_once_the_mute_is_over():
    muted = AlertState(check="api", muted_until=T0 + 10 * MINUTE)
    state, events = feed(["unknown"] * 15, state=muted)
    assert kinds(events) == [(10, "unknown")]
    assert state.state == UNKNOWN and state.alert_key is not None
    _, events = feed(["ok"] * 2, state=state, start=T0 + 15 * MINUTE)
    assert kinds(events) == [(1, "known")]
