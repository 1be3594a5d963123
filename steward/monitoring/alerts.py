"""The alert state machine: a check's samples in, its alert state and the events to announce out.

`step()` is pure: no clock, no store, no I/O. The store applies its result with a conditional
update (store.save_state), and the job turns the events into messages.

States and their moves (a "bad" sample is one the check judged bad, or whose value is inside
the alert band; an "unknown" sample is one the check could not evaluate):

    OK --bad--> PENDING --(fail_threshold bad in a row)--> ALERTING    event "alert"
    PENDING --good--> OK                                                (nothing was said)
    ALERTING --bad, every `renotify`--> ALERTING                        event "still_down"
    ALERTING --(ok_threshold good in a row)--> OK                       event "recovered"
    OK | PENDING --(fail_threshold unknown in a row)--> UNKNOWN         event "unknown"
    UNKNOWN --(ok_threshold good in a row)--> OK                        event "known"
    UNKNOWN --(fail_threshold bad in a row)--> ALERTING                 event "alert"

Unknown samples neither break nor extend a good or bad streak: a flaky reference node must not
hide an outage, nor end one. While a check is muted the state still moves, but no alert is
produced; an outage (or blind spell) that began during a mute is announced once the mute is
over, and the end of one announced before the mute is still said.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

OK, PENDING, ALERTING, UNKNOWN = "OK", "PENDING", "ALERTING", "UNKNOWN"

# What a check says about one run.
GOOD, BAD, UNSURE = "ok", "bad", "unknown"
Status = Literal["ok", "bad", "unknown"]

EventKind = Literal["alert", "still_down", "recovered", "unknown", "known"]


@dataclass(frozen=True)
class Sample:
    """One run of one check."""

    time: dt.datetime
    check: str
    status: Status
    value: float | None = None
    # Status code, error text, each reference's height: whatever explains the status.
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    """When a check's samples become an alert, and when the alert ends."""

    fail_threshold: int = 3
    ok_threshold: int = 2
    # Value band with hysteresis: alert when value > alert_above, clear when value < clear_below
    # (clear_below defaults to alert_above); the same mirrored for alert_below / clear_above.
    alert_above: float | None = None
    clear_below: float | None = None
    alert_below: float | None = None
    clear_above: float | None = None
    # Say again while still down this often; None never repeats.
    renotify: dt.timedelta | None = dt.timedelta(hours=1)


@dataclass(frozen=True)
class AlertState:
    """A check's alert state, as stored (one row per check)."""

    check: str
    state: str = OK
    # Row version for the conditional update; 0 means "no row yet".
    version: int = 0
    bad_streak: int = 0
    ok_streak: int = 0
    unknown_streak: int = 0
    # When the current streak (good or bad) began: recovery starts at the first good sample.
    streak_since: dt.datetime | None = None
    # "high" or "low" while the value is past a band's alert line and not yet back past its
    # clear line; None otherwise.
    band: str | None = None
    # When the current state began (for PENDING and ALERTING: the first bad sample).
    since: dt.datetime | None = None
    last_notified_at: dt.datetime | None = None
    # Outbox key of the message announcing the current alert (or unknown state): what the
    # recovery replies to. None while nothing has been said.
    alert_key: str | None = None
    muted_until: dt.datetime | None = None
    last_status: str | None = None
    last_value: float | None = None
    last_at: dt.datetime | None = None


@dataclass(frozen=True)
class Event:
    kind: EventKind
    check: str
    at: dt.datetime
    since: dt.datetime
    key: str  # the outbox key a message for this event alone would use
    reply_to: str | None = None
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    duration: dt.timedelta | None = None  # how long the outage (or blind spell) lasted


def judge(sample: Sample, rules: Rules, band: str | None = None) -> Sample:
    """The sample marked bad when its value is past its band (given the band already held, for
    the hysteresis), so the store, the chart, the CLI's exit status and the log agree with the
    alert. A sample already bad or unknown is left as it is."""
    if sample.status != GOOD or sample.value is None:
        return sample
    held = _band(band, sample.value, rules)
    if held is None:
        return sample
    details = {**sample.details, "band": held}
    return dataclasses.replace(sample, status=BAD, details=details)


def alert_key(check: str, since: dt.datetime) -> str:
    return f"alert:{check}:{since.isoformat()}"


def step(
    state: AlertState, sample: Sample, rules: Rules, now: dt.datetime
) -> tuple[AlertState, list[Event]]:
    """Feed one sample to a check's alert state; return the new state and what to announce."""
    s = dataclasses.replace(
        state,
        last_status=sample.status,
        last_value=sample.value,
        last_at=sample.time,
        since=state.since or sample.time,  # a new check is OK since its first sample
    )
    muted = s.muted_until is not None and s.muted_until > now
    if sample.status == UNSURE:
        return _unsure(s, sample, rules, now, muted)
    band = _band(s.band, sample.value, rules)
    bad = sample.status == BAD or band is not None
    flipped = (bad and s.bad_streak == 0) or (not bad and s.ok_streak == 0)
    s = dataclasses.replace(
        s,
        band=band,
        unknown_streak=0,
        bad_streak=s.bad_streak + 1 if bad else 0,
        ok_streak=0 if bad else s.ok_streak + 1,
        streak_since=sample.time if flipped or s.streak_since is None else s.streak_since,
    )
    return (_bad if bad else _good)(s, sample, rules, now, muted)


def _band(band: str | None, value: float | None, rules: Rules) -> str | None:
    if value is None:
        return band
    if rules.alert_above is not None and value > rules.alert_above:
        return "high"
    if rules.alert_below is not None and value < rules.alert_below:
        return "low"
    # Past neither alert line: a band without its clear line is clear now; one with it stays
    # until the value is past the clear line.
    if band == "high" and rules.clear_below is not None and value >= rules.clear_below:
        return band
    if band == "low" and rules.clear_above is not None and value <= rules.clear_above:
        return band
    return None


def _event(kind: EventKind, s: AlertState, sample: Sample, key: str, **kw: Any) -> Event:
    return Event(
        kind=kind,
        check=s.check,
        at=sample.time,
        since=s.since or sample.time,
        key=key,
        value=sample.value,
        details=sample.details,
        **kw,
    )


def _bad(s: AlertState, sample: Sample, rules: Rules, now: dt.datetime, muted: bool):
    if s.state == OK:
        s = dataclasses.replace(s, state=PENDING, since=s.streak_since)
    if s.state in (PENDING, UNKNOWN):
        if s.bad_streak < rules.fail_threshold:
            return s, []
        s = dataclasses.replace(s, state=ALERTING, since=s.streak_since, alert_key=None)
    # ALERTING: announce it if nothing was said yet (the mute may just have ended), else
    # repeat it every `renotify`.
    if muted:
        return s, []
    if s.alert_key is None:
        key = alert_key(s.check, s.since)
        s = dataclasses.replace(s, alert_key=key, last_notified_at=now)
        return s, [_event("alert", s, sample, key)]
    if (
        rules.renotify is not None
        and s.last_notified_at is not None
        and now - s.last_notified_at >= rules.renotify
    ):
        s = dataclasses.replace(s, last_notified_at=now)
        key = f"still:{s.check}:{s.since.isoformat()}:{now.isoformat()}"
        return s, [_event("still_down", s, sample, key)]
    return s, []


def _good(s: AlertState, sample: Sample, rules: Rules, now: dt.datetime, muted: bool):
    if s.state == PENDING:
        return dataclasses.replace(s, state=OK, since=sample.time), []
    if s.state not in (ALERTING, UNKNOWN) or s.ok_streak < rules.ok_threshold:
        return s, []
    # The outage (or blind spell) ended at the first good sample of this streak.
    ended = s.streak_since or sample.time
    kind: EventKind = "recovered" if s.state == ALERTING else "known"
    said = s.alert_key
    done = dataclasses.replace(s, state=OK, since=ended, alert_key=None, last_notified_at=None)
    # An outage that was announced gets its end said even during a mute (it is not urgent: a
    # muted chat holds it); one that began and ended unannounced is not news.
    if said is None:
        return done, []
    key = f"{kind}:{s.check}:{(s.since or ended).isoformat()}"
    duration = ended - s.since if s.since is not None else None
    event = _event(kind, s, sample, key, reply_to=said, duration=duration)
    return done, [dataclasses.replace(event, at=ended)]  # back since the first good sample


def _unsure(s: AlertState, sample: Sample, rules: Rules, now: dt.datetime, muted: bool):
    s = dataclasses.replace(s, unknown_streak=s.unknown_streak + 1)
    if s.state == UNKNOWN and s.alert_key is None and not muted:
        pass  # a blind spell that began during a mute: announce it now that the mute is over
    elif s.state not in (OK, PENDING) or s.unknown_streak < rules.fail_threshold:
        return s, []
    else:
        s = dataclasses.replace(
            s, state=UNKNOWN, since=sample.time, bad_streak=0, ok_streak=0, alert_key=None
        )
    if muted:
        return s, []
    key = f"unknown:{s.check}:{(s.since or sample.time).isoformat()}"
    s = dataclasses.replace(s, alert_key=key, last_notified_at=now)
    return s, [_event("unknown", s, sample, key)]
