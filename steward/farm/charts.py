"""/farm's chart: words the reader stored, and words each bot has not used yet, over the last days
(the seed's Grafana dashboard, in the chat). matplotlib's Figure API, drawn off the event loop."""

from __future__ import annotations

import datetime as dt
import io

from sqlalchemy.engine import Engine

from steward.farm import reader

WINDOW = dt.timedelta(days=7)
MAX_BOTS = 12  # lines on one chart; the ones with most unused words are kept


def render(engine: Engine, now: dt.datetime, tz: dt.tzinfo, window: dt.timedelta = WINDOW) -> bytes:
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from steward import plots

    with engine.connect() as conn:
        series = reader.samples(conn, now - window)
    busiest = sorted(series, key=lambda b: -series[b][-1][2])[:MAX_BOTS]
    fig = Figure(figsize=(plots.WIDTH, 5.2), layout="constrained")
    stored_ax, unused_ax = fig.subplots(2, 1, sharex=True)
    stored = sorted({(at, n) for points in series.values() for at, n, _ in points})
    if stored:
        stored_ax.step(
            [a for a, _ in stored], [n for _, n in stored], where="post", color=plots.LINE
        )
    stored_ax.set_title("words stored from the reader's timeline")
    for i, bot in enumerate(sorted(busiest)):
        points = series[bot]
        color = plots.COLORS[i % len(plots.COLORS)]
        unused_ax.step(
            [p[0] for p in points], [p[2] for p in points], where="post", color=color, label=bot
        )
    unused_ax.set_title("words not yet used, per bot")
    if busiest:
        unused_ax.legend(loc="upper left", ncols=min(4, len(busiest)))
    else:
        unused_ax.text(0.5, 0.5, "no samples yet", ha="center", transform=unused_ax.transAxes)
    unused_ax.set_xlim(now - window, now)
    unused_ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d", tz=tz))
    for ax in (stored_ax, unused_ax):
        ax.grid(alpha=0.3)
    FigureCanvasAgg(fig)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=plots.DPI)
    return out.getvalue()
