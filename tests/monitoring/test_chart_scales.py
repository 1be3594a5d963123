"""/hour, /day and /week draw a connected line at every check interval, before and after the
hourly rollups exist (a /week once drew only its last hour for checks every 20 s or less)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from steward import db, plots
from steward.monitoring import charts, store
from steward.monitoring.alerts import Sample
from steward.monitoring.spec import parse_checks

NOW = dt.datetime(2026, 3, 8, 12, 20, tzinfo=dt.UTC)
HISTORY = dt.timedelta(hours=6)
(API,) = parse_checks("api=https://a.example")


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """One store per (interval, rolled up): six hours of samples every `interval` seconds."""
    made: dict[tuple[int, bool], object] = {}

    def engine(interval: int, rolled: bool):
        if (interval, rolled) not in made:
            path = tmp_path_factory.mktemp("scales") / f"s{interval}{rolled}.sqlite"
            eng = db.make_engine(f"sqlite:///{path}")
            db.metadata.create_all(eng, tables=[store.samples, store.rollups, db.state])
            step, at, batch = dt.timedelta(seconds=interval), NOW - HISTORY, []
            while at <= NOW:
                batch.append(Sample(at, "api", "ok", 100.0 + (at.minute % 7)))
                at += step
            store.write_samples(eng, batch)
            while rolled and store.roll_up(eng, NOW):
                pass
            made[(interval, rolled)] = eng
        return made[(interval, rolled)]

    yield engine
    for eng in made.values():
        eng.dispose()


@pytest.mark.parametrize("rolled", [False, True], ids=["raw", "rolled-up"])
@pytest.mark.parametrize("interval", [5, 10, 60, 300])
@pytest.mark.parametrize("window", ["hour", "day", "week"])
def test_the_line_is_unbroken_over_samples_without_silences(engines, window, interval, rolled):
    (panel,) = charts.panels(engines(interval, rolled), [API], charts.WINDOWS[window], NOW)
    xs, ys = plots.line_of(panel)
    drawn = [y for y in ys if not math.isnan(y)]
    assert drawn, "nothing drawn"
    assert len(drawn) == len(ys), f"{len(ys) - len(drawn)} breaks in a line without silences"
    shown = min(charts.WINDOWS[window], HISTORY)
    assert xs[-1] - xs[0] >= shown - dt.timedelta(hours=1), "the line covers the window"


def test_a_silence_of_hours_still_breaks_the_rolled_up_line(tmp_path):
    eng = db.make_engine(f"sqlite:///{tmp_path}/s.sqlite")
    db.metadata.create_all(eng, tables=[store.samples, store.rollups, db.state])
    batch, at = [], NOW - HISTORY
    while at <= NOW:
        if not (NOW - dt.timedelta(hours=4) <= at < NOW - dt.timedelta(hours=2)):
            batch.append(Sample(at, "api", "ok", 100.0))
        at += dt.timedelta(seconds=10)
    store.write_samples(eng, batch)
    while store.roll_up(eng, NOW):
        pass
    (panel,) = charts.panels(eng, [API], charts.WINDOWS["week"], NOW)
    _, ys = plots.line_of(panel)
    assert sum(math.isnan(y) for y in ys) == 1
    eng.dispose()


@pytest.mark.parametrize("count", [1, 6, 20])
def test_the_title_sits_above_the_first_panel_s_title(count):
    import matplotlib as mpl
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    times = [NOW - dt.timedelta(minutes=m) for m in range(60, 0, -1)]
    panels = [plots.Panel(f"check{n}", times, [1.0] * 60) for n in range(count)]
    with mpl.rc_context(plots._STYLE):
        fig = plots.series_figure(panels, tz=dt.UTC, title="last 6 hours")
        renderer = FigureCanvasAgg(fig).get_renderer()
        title = fig._suptitle.get_window_extent(renderer)
        first = fig.axes[0].title.get_window_extent(renderer)
    assert title.y0 >= first.y1, "the chart's title overlaps the first panel's"


def test_an_alert_chart_spans_the_six_hours_its_title_says(engines):
    import matplotlib as mpl
    from matplotlib import dates as mdates

    (panel,) = charts.panels(engines(60, False), [API], charts.ALERT_WINDOW, NOW)
    with mpl.rc_context(plots._STYLE):
        fig = plots.series_figure([panel], tz=dt.UTC, title="last 6 hours")
    low, high = (mdates.num2date(x) for x in fig.axes[0].get_xlim())
    assert (low, high) == (NOW - charts.ALERT_WINDOW, NOW)
