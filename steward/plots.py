"""Charts as PNG bytes: time series for monitoring, metric curves for training runs.

matplotlib is imported here only, and this module only when a chart is drawn, so the worker
starts without it. Figures are built with the object API (`Figure()` + the Agg canvas), never
pyplot, whose global figure registry leaks in a long-running process. Drawing is slow and
blocking: callers run these functions in a thread. Sizes and fonts are chosen to be read on a
phone: a 8-inch-wide figure at 100 dpi is 800 px, what Telegram shows without scaling.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # no screen on a dyno; selecting it before pyplot could be imported

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

WIDTH = 8.0  # inches
PANEL_HEIGHT = 2.6
DPI = 100
LINE = "#1f77b4"
BAD = "#d62728"
GAP_FACTOR = 3.0  # a silence longer than this many usual intervals breaks the line
MAX_POINTS = 4000  # per line; more only costs time and bytes at 800 px
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
MAX_PANELS = 6
# Monitoring charts' margins, inches: room for six-digit ticks and a unit on the left.
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_SUPTITLE, MARGIN_BOTTOM = 0.95, 0.15, 0.3, 0.3, 0.55
PANEL_GAP = 0.45  # between stacked panels: the next panel's title sits there

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


@dataclass(frozen=True)
class Panel:
    """One check's series over time. `band` is (alert below, alert above), either may be None;
    `shade` the stretches to paint as bad; `rollup_min`/`rollup_max` draw a min-max band."""

    title: str
    times: Sequence[dt.datetime]
    values: Sequence[float | None]
    band: tuple[float | None, float | None] | None = None
    shade: Sequence[tuple[dt.datetime, dt.datetime]] = ()
    y_label: str = ""
    rollup_min: Sequence[float | None] | None = None
    rollup_max: Sequence[float | None] | None = None
    # A silence no longer than this never breaks the line: the spacing of the sparsest points
    # (hourly rollups next to a few seconds' raw samples). None: judge by the usual spacing.
    min_gap: dt.timedelta | None = None
    # The time span to show (start, end), so "last 6 hours" is six hours wide whatever the data.
    span: tuple[dt.datetime, dt.datetime] | None = None


@dataclass(frozen=True)
class Curve:
    """One metric of a training run: its values by step (NaN where NaN was logged)."""

    name: str
    steps: Sequence[int]
    values: Sequence[float]
    family: str = field(default="", compare=False)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def with_gaps(
    times: Sequence[dt.datetime],
    values: Sequence[float | None],
    min_gap: dt.timedelta | None = None,
) -> tuple[list[dt.datetime], list[float]]:
    """The series with a NaN inserted in every silence much longer than the usual interval,
    so the line breaks there instead of drawing across hours without samples.

    The usual interval is the median step, which a mixed series gets wrong: an hour of 5-second
    samples after a week of hourly rollups makes 5 s "usual" and would isolate every hourly
    point. `min_gap` (the sparsest points' spacing) is the floor below which nothing breaks."""
    xs, ys = list(times), [_number(v) for v in values]
    if len(xs) < 3:
        return xs, ys
    steps = sorted((b - a).total_seconds() for a, b in zip(xs, xs[1:], strict=False))
    usual = steps[len(steps) // 2] or 1.0
    limit = max(GAP_FACTOR * usual, min_gap.total_seconds() if min_gap else 0.0)
    out_x, out_y = [xs[0]], [ys[0]]
    for (a, b), y in zip(zip(xs, xs[1:], strict=False), ys[1:], strict=True):
        if (b - a).total_seconds() > limit:
            out_x.append(a + (b - a) / 2)
            out_y.append(math.nan)
        out_x.append(b)
        out_y.append(y)
    return out_x, out_y


def line_of(panel: Panel) -> tuple[list[dt.datetime], list[float]]:
    """The panel's line as drawn: its points with a NaN at each silence."""
    return with_gaps(panel.times, panel.values, panel.min_gap)


def _thin(xs: list, *columns: list) -> tuple[list, ...]:
    """Every k-th point (and the last) when a line has more points than pixels to show them."""
    if len(xs) <= MAX_POINTS:
        return (xs, *columns)
    k = math.ceil(len(xs) / MAX_POINTS)
    keep = list(range(0, len(xs), k))
    if keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return tuple([col[i] for i in keep] for col in (xs, *columns))


def _draw_band(ax, band: tuple[float | None, float | None] | None) -> None:
    """The alert thresholds as dashed lines with the alerting side tinted."""
    if band is None:
        return
    low, high = band
    if high is not None:
        ax.axhline(high, color=BAD, linestyle="--", linewidth=1)
        ax.axhspan(high, max(high * 10, high + 1) if high >= 0 else 0, color=BAD, alpha=0.06)
    if low is not None:
        ax.axhline(low, color=BAD, linestyle="--", linewidth=1)
        ax.axhspan(min(0.0, low - abs(low)), low, color=BAD, alpha=0.06)


def _limits(ax, values: Sequence[float], band) -> None:
    # Keep the data in view: the tinted spans above must not stretch the axis to 10x.
    seen = [v for v in values if not math.isnan(v)]
    if band is not None:
        seen += [b for b in band if b is not None]
    if not seen:
        return
    low, high = min(seen), max(seen)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    ax.set_ylim(low - pad, high + pad)


def render_series(panels: Sequence[Panel], *, tz: dt.tzinfo, title: str = "") -> bytes:
    """Panels stacked over one shared time axis, labelled in `tz`, as a PNG."""
    import matplotlib as mpl

    with mpl.rc_context(_STYLE):
        return _png(series_figure(panels, tz=tz, title=title))


def series_figure(panels: Sequence[Panel], *, tz: dt.tzinfo, title: str = "") -> Figure:
    """The figure `render_series` draws (call inside the chart style)."""
    count = max(1, len(panels))
    height = PANEL_HEIGHT * count + 0.6
    fig = Figure(figsize=(WIDTH, height))
    _fixed_margins(fig, height, count, titled=bool(title))
    axes = fig.subplots(count, 1, sharex=True, squeeze=False)[:, 0]
    locator = mdates.AutoDateLocator(tz=tz, minticks=3, maxticks=7)
    for ax, panel in zip(axes, panels, strict=False):
        _series_panel(ax, panel, tz)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    if not panels:
        axes[0].text(0.5, 0.5, "no checks", ha="center", va="center")
    if title:
        # Placed in inches from the top: matplotlib's default (2% of the height) put it
        # over the first panel's title on a tall figure.
        top = 1 - 0.06 / height
        fig.suptitle(f"{title} ({_tz_name(tz)})", fontsize=12, y=top, va="top")
    return fig


def _fixed_margins(fig: Figure, height: float, count: int, *, titled: bool) -> None:
    """Margins in inches, set once. Constrained layout measured every label and took over half
    of a /week chart's time (bench/monitoring.py); these panels always have the same parts: tick
    labels and a unit on the left, a title above each, dates and their offset line below."""
    top = MARGIN_TOP + (MARGIN_SUPTITLE if titled else 0.0)
    axes_height = (height - top - MARGIN_BOTTOM - (count - 1) * PANEL_GAP) / count
    fig.subplots_adjust(
        left=MARGIN_LEFT / WIDTH,
        right=1 - MARGIN_RIGHT / WIDTH,
        top=1 - top / height,
        bottom=MARGIN_BOTTOM / height,
        hspace=PANEL_GAP / axes_height,  # matplotlib wants the gap as a share of a panel
    )


def _series_panel(ax, panel: Panel, tz: dt.tzinfo) -> None:
    ax.set_title(panel.title, loc="left")
    if panel.y_label:
        ax.set_ylabel(panel.y_label)
    xs, ys = line_of(panel)
    if panel.span is not None:
        ax.set_xlim(*panel.span)
    for start, end in panel.shade:
        ax.axvspan(start, end, color=BAD, alpha=0.15, linewidth=0)
    _draw_band(ax, panel.band)
    if panel.rollup_min is not None and panel.rollup_max is not None:
        _, lows = with_gaps(panel.times, panel.rollup_min, panel.min_gap)
        _, highs = with_gaps(panel.times, panel.rollup_max, panel.min_gap)
        xs, ys, lows, highs = _thin(xs, ys, lows, highs)
        ax.fill_between(xs, lows, highs, color=LINE, alpha=0.2, linewidth=0, label="min-max")
        _limits(ax, lows + highs, panel.band)
    else:
        xs, ys = _thin(xs, ys)
        _limits(ax, ys, panel.band)
    if not any(not math.isnan(y) for y in ys):
        ax.text(0.5, 0.5, "no values in this window", transform=ax.transAxes, ha="center")
        if xs and panel.span is None:
            ax.set_xlim(min(xs), max(xs) + dt.timedelta(minutes=1))
        return
    ax.plot(xs, ys, color=LINE, linewidth=1.4, marker="o" if len(xs) < 30 else None, ms=3)


def _tz_name(tz: dt.tzinfo) -> str:
    return getattr(tz, "key", None) or dt.datetime.now(tz).strftime("%Z") or str(tz)


# -- training curves -----------------------------------------------------------------------

_PREFIX = re.compile(r"^(train|training|val|valid|validation|eval|test)[_/.\-]", re.IGNORECASE)
_SUFFIX = re.compile(r"[_/.\-](epoch|step)$", re.IGNORECASE)


def family(name: str) -> str:
    """What a metric measures, so that `loss`, `val_loss` and `eval_loss` share a panel."""
    base = _SUFFIX.sub("", _PREFIX.sub("", name.strip()))
    return base.lower() or name.lower()


def render_curves(
    curves: Sequence[Curve],
    *,
    title: str = "",
    x_label: str = "step",
    markers: Sequence[tuple[int, str]] = (),
) -> bytes:
    """A run's metrics by step, one panel per kind of metric (up to MAX_PANELS), as a PNG.

    Metrics of one kind (train and validation loss) are drawn together; a panel whose values
    span more than two orders of magnitude (a learning rate schedule) gets a log scale. NaN
    and infinite values are red crosses along the panel's top edge; `markers` (step, label) are
    dashed vertical lines across all panels (a learning rate changed, the run diverged).
    """
    import matplotlib as mpl

    groups: dict[str, list[Curve]] = {}
    for curve in curves:
        groups.setdefault(curve.family or family(curve.name), []).append(curve)
    shown = list(groups.items())[:MAX_PANELS]
    with mpl.rc_context(_STYLE):
        count = max(1, len(shown))
        fig = Figure(figsize=(WIDTH, 2.3 * count + 0.6), layout="constrained")
        axes = fig.subplots(count, 1, sharex=True, squeeze=False)[:, 0]
        for ax, (kind, members) in zip(axes, shown, strict=False):
            _curve_panel(ax, kind, members)
        for step, label in markers:
            for ax in axes:
                ax.axvline(step, color="#555555", linestyle="--", linewidth=0.9)
            axes[0].annotate(
                label,
                (step, 1),
                xycoords=axes[0].get_xaxis_transform(),
                xytext=(3, -2),
                textcoords="offset points",
                fontsize=8,
                va="top",
            )
        if not shown:
            axes[0].text(0.5, 0.5, "no metrics logged yet", ha="center", va="center")
        axes[-1].set_xlabel(x_label)
        axes[-1].xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True))
        if title:
            fig.suptitle(title, fontsize=12)
        return _png(fig)


def _curve_panel(ax, kind: str, members: Sequence[Curve]) -> None:
    ax.set_title(kind, loc="left")
    finite: list[float] = []
    broken: list[int] = []
    for color, curve in zip(COLORS * 3, members, strict=False):
        broken += [s for s, v in zip(curve.steps, curve.values, strict=True) if not _finite(v)]
        xs, ys = _thin(list(curve.steps), [_number(v) for v in curve.values])
        ys = [y if math.isfinite(y) else math.nan for y in ys]
        finite += [y for y in ys if not math.isnan(y)]
        ax.plot(xs, ys, color=color, linewidth=1.4, label=curve.name, marker=_marker(xs), ms=3)
    if broken:  # without a mark a NaN stretch is only a gap in the line
        ax.plot(
            broken,
            [1.0] * len(broken),
            transform=ax.get_xaxis_transform(),
            linestyle="none",
            marker="x",
            color=BAD,
            ms=5,
            clip_on=False,
            label="NaN/inf",
        )
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")
    if len(members) > 1 or broken:
        ax.legend(loc="best")
    elif members:
        ax.set_ylabel(members[0].name)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _marker(xs: Sequence[int]) -> str | None:
    return "o" if len(xs) <= 30 else None
