"""Charts: PNGs drawn without pyplot, gaps that break lines, metric kinds sharing a panel."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from zoneinfo import ZoneInfo

from steward import plots
from tests.worker_process import ROOT

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n"


def every(minutes: int, count: int, start: dt.datetime = T0) -> list[dt.datetime]:
    return [start + dt.timedelta(minutes=minutes * i) for i in range(count)]


def test_a_long_silence_breaks_the_line_instead_of_bridging_it():
    times = every(5, 4) + every(5, 3, T0 + dt.timedelta(hours=3))
    xs, ys = plots.with_gaps(times, [1, 2, 3, 4, 5, 6, 7])
    assert len(xs) == 8 and math.isnan(ys[4]), "one break, inside the three silent hours"
    assert times[3] < xs[4] < times[4]
    assert [y for y in ys if not math.isnan(y)] == [1, 2, 3, 4, 5, 6, 7]
    _, holes = plots.with_gaps(every(5, 3), [None, 1, 2])
    assert math.isnan(holes[0]), "a sample without a value is a hole too"


def test_series_panels_render_a_png_of_phone_width_in_the_users_time_zone():
    times = every(5, 2016)  # a week of 5-minute samples
    values = [100 + (i % 13) * 10 for i in range(len(times))]
    panel = plots.Panel(
        "api",
        times,
        values,
        band=(None, 200),
        shade=[(times[900], times[930])],
        y_label="response, ms",
    )
    rolled = plots.Panel(
        "node", times[::12], values[::12], rollup_min=values[::12], rollup_max=values[::12]
    )
    png = plots.render_series([panel, rolled], tz=ZoneInfo("Europe/Berlin"), title="last week")
    assert png.startswith(PNG)
    width = int.from_bytes(png[16:20], "big")
    assert width == plots.WIDTH * plots.DPI == 800
    assert len(png) < 150_000


def test_an_empty_window_still_gives_a_chart_that_says_so():
    png = plots.render_series([plots.Panel("idle", [], [])], tz=dt.UTC, title="last hour")
    assert png.startswith(PNG)
    assert plots.render_curves([], title="nothing yet").startswith(PNG)


def test_metrics_of_one_kind_share_a_panel():
    assert plots.family("loss") == plots.family("val_loss") == plots.family("train/loss_epoch")
    assert plots.family("eval_accuracy") == "accuracy"
    assert plots.family("lr") != plots.family("loss")


def test_training_curves_render_with_nan_and_many_points():
    steps = list(range(20_000))
    curves = [
        plots.Curve("loss", steps, [1 / (s + 1) if s != 500 else math.nan for s in steps]),
        plots.Curve("val_loss", steps[::100], [1.1 / (s + 1) for s in steps[::100]]),
        plots.Curve("lr", steps, [0.1 * 0.999**s for s in steps]),
    ]
    png = plots.render_curves(curves, title="run 1")
    assert png.startswith(PNG) and len(png) < 150_000


def test_drawing_never_loads_pyplot():
    code = (
        "import sys, datetime as dt; from steward import plots;"
        "plots.render_curves([plots.Curve('loss', [1, 2], [1.0, 0.5])]);"
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
