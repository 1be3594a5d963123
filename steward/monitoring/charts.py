"""Monitoring's charts: samples and hourly rollups turned into panels for steward.plots.

Runs in a thread (matplotlib is slow and blocking); `steward.plots` is imported only here, and
only when a chart is drawn.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from steward.monitoring import store
from steward.monitoring.alerts import BAD, Sample
from steward.monitoring.messages import UNITS
from steward.monitoring.spec import CheckSpec
from steward.monitoring.uptime import percent

WINDOWS = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
}
ALERT_WINDOW = dt.timedelta(hours=6)  # what an alert's chart shows
ROLLUPS_FROM = dt.timedelta(days=3)  # windows this long or longer draw the hourly rollups


def bad_stretches(samples: Sequence[Sample]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Runs of bad samples as (first bad, first sample after them): the shaded stretches."""
    stretches: list[tuple[dt.datetime, dt.datetime]] = []
    start: dt.datetime | None = None
    for s in samples:
        if s.status == BAD and start is None:
            start = s.time
        elif s.status != BAD and start is not None:
            stretches.append((start, s.time))
            start = None
    if start is not None:
        stretches.append((start, samples[-1].time))
    return stretches


def bad_hours(hours: Sequence[store.Rollup]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Runs of hours that had a bad sample, as stretches: the shading of a rolled-up window,
    where an hour is a few pixels wide."""
    stretches: list[tuple[dt.datetime, dt.datetime]] = []
    for h in hours:
        if not h.bad:
            continue
        if stretches and stretches[-1][1] == h.hour:
            stretches[-1] = (stretches[-1][0], h.hour + store.HOUR)
        else:
            stretches.append((h.hour, h.hour + store.HOUR))
    return stretches


def _label(spec: CheckSpec) -> str:
    unit = UNITS.get(spec.kind, "")
    kind = {
        "http": "response",
        "tcp": "connect",
        "evm_lag": "lag",
        "python": "value",
        "tls": "certificate",
        "dns": "lookup",
    }[spec.kind]
    return f"{kind}, {unit}" if unit else kind


def _title(spec: CheckSpec, count: int, bad: int) -> str:
    """The check's name and its uptime over the window drawn."""
    if not count:
        return spec.name
    return f"{spec.name}: {percent(100.0 * (count - bad) / count)} up"


def panels(
    engine: Engine,
    specs: Sequence[CheckSpec],
    window: dt.timedelta,
    now: dt.datetime,
    recent: Sequence[Sample] = (),
) -> list:
    """One panel per check over the last `window`; long windows from the hourly rollups.
    `recent`: samples not stored yet (an alert's chart is drawn before its tick commits)."""
    from steward import plots

    start = now - window
    names = [s.name for s in specs]
    rolled = store.read_rollups(engine, names, start) if window >= ROLLUPS_FROM else {}
    # Raw samples only where no rollup covers them: reading a week of them was most of the
    # cost of a /week chart.
    rolled_until = {name: hours[-1].hour + store.HOUR for name, hours in rolled.items() if hours}
    raw_from = min((rolled_until.get(name, start) for name in names), default=start)
    raw = store.read_samples(engine, names, raw_from, details=False)
    for sample in recent:
        if sample.check in raw:
            raw[sample.check].append(sample)
    out = []
    for spec in specs:
        samples = raw[spec.name]
        hours = rolled.get(spec.name, [])
        if hours:
            # Rollups for the past hours, raw samples for the hour not yet rolled up.
            recent = [s for s in samples if s.time >= rolled_until[spec.name]]
            shade = bad_hours(hours) + bad_stretches(recent)
            times = [h.hour + store.HOUR / 2 for h in hours] + [s.time for s in recent]
            values = [h.mean for h in hours] + [s.value for s in recent]
            lows = [h.min for h in hours] + [s.value for s in recent]
            highs = [h.max for h in hours] + [s.value for s in recent]
            count = sum(h.count for h in hours) + len(recent)
            bad = sum(h.bad for h in hours) + sum(s.status == BAD for s in recent)
            panel = plots.Panel(
                title=_title(spec, count, bad),
                times=times,
                values=values,
                band=spec.band(),
                shade=shade,
                y_label=_label(spec),
                rollup_min=lows,
                rollup_max=highs,
                # A missing hour breaks the line; the hourly spacing itself does not.
                min_gap=store.HOUR * 1.5,
                span=(start, now),
            )
        else:
            bad = sum(s.status == BAD for s in samples)
            panel = plots.Panel(
                title=_title(spec, len(samples), bad),
                times=[s.time for s in samples],
                values=[s.value for s in samples],
                band=spec.band(),
                shade=bad_stretches(samples),
                y_label=_label(spec),
                span=(start, now),
            )
        out.append(panel)
    return out


def render(
    engine: Engine,
    specs: Sequence[CheckSpec],
    window: dt.timedelta,
    now: dt.datetime,
    tz: dt.tzinfo,
    title: str,
    recent: Sequence[Sample] = (),
) -> bytes:
    """A PNG of the checks over the window, one panel each (call it in a thread)."""
    from steward import plots

    return plots.render_series(panels(engine, specs, window, now, recent), tz=tz, title=title)
