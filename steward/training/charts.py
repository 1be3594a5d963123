"""A run's curves as a chart: metric series from the store, drawn by steward.plots.

Blocking (a query and matplotlib): call it in a thread. `steward.plots` is imported only here,
and only when a chart is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from steward.training import store


def unknown_metrics(engine: Engine, run_id: int, wanted: Sequence[str]) -> tuple[list, list]:
    """(names the run has, the wanted ones it does not have)."""
    with engine.connect() as conn:
        names = store.metric_names(conn, run_id)
    return names, [w for w in wanted if w not in names]


def render(engine: Engine, run: Any, names: Sequence[str] | None = None) -> bytes | None:
    """A PNG of the run's metrics (all, or `names`), or None when it logged none."""
    with engine.connect() as conn:
        series = store.series(conn, run.id, list(names) if names else None)
    if not series:
        return None
    from steward import plots

    order = list(names) if names else sorted(series, key=lambda n: ("loss" not in n.lower(), n))
    curves = [plots.Curve(n, *series[n]) for n in order if n in series]
    return plots.render_curves(curves, title=f"{run.name} (run {run.id})")
