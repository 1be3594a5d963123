"""A run's curves as a chart: metric series from the store, drawn by steward.plots.

Blocking (a query and matplotlib): call it in a thread. `steward.plots` is imported only here,
and only when a chart is drawn.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.training import health, store

# What a trainer logs about itself, not about learning: never a panel unless asked for by name.
_BOOKKEEPING = re.compile(
    r"(^|[_/.\-])(epoch|global_step|step|runtime|samples_per_second|steps_per_second|"
    r"total_flos|flos|num_tokens|num_input_tokens_seen)$",
    re.IGNORECASE,
)
_LEARNING_RATE = re.compile(r"(^|[_/.\-])(lr|learning_rate)($|[_/.\-])", re.IGNORECASE)


def unknown_metrics(engine: Engine, run_id: int, wanted: Sequence[str]) -> tuple[list, list]:
    """(names the run has, the wanted ones it does not have)."""
    with engine.connect() as conn:
        names = store.metric_names(conn, run_id)
    return names, [w for w in wanted if w not in names]


def by_meaning(names: Sequence[str]) -> list[str]:
    """The metrics worth a panel, in the order panels are given out: losses, results (accuracy,
    F1 …), the learning rate, then the rest (grad norm …); bookkeeping (epoch, runtime,
    throughput) is left out."""

    def rank(name: str) -> tuple[int, str]:
        if health.is_loss(name):
            return 0, name
        if _LEARNING_RATE.search(name):
            return 2, name
        if health.direction(name) is not None:
            return 1, name
        return 3, name

    return sorted((n for n in names if not _BOOKKEEPING.search(n)), key=rank)


def markers(conn: Connection, run_id: int, series: dict[str, tuple[list, list]]) -> list:
    """(step, label) where the learning rate was changed from the chat, and where a loss first
    went NaN or infinite (the run diverged)."""
    out: list[tuple[int, str]] = []
    changes = conn.execute(
        sa.select(store.run_commands.c.argument, store.run_commands.c.acked_at)
        .where(
            store.run_commands.c.run_id == run_id,
            store.run_commands.c.kind == "set_lr",
            store.run_commands.c.ok.is_(True),
        )
        .order_by(store.run_commands.c.id)
    ).all()
    for argument, acked_at in changes:
        step = conn.scalar(
            sa.select(sa.func.max(store.metrics.c.step)).where(
                store.metrics.c.run_id == run_id, store.metrics.c.time <= acked_at
            )
        )
        if step is not None:
            argument = argument or {}
            what = f"x{argument['factor']:g}" if "factor" in argument else argument.get("value")
            out.append((int(step), f"lr {what}"))
    broken = [
        s
        for name, (steps, values) in series.items()
        if health.is_loss(name)
        for s, v in zip(steps, values, strict=True)
        if v is None or not math.isfinite(v)
    ]
    if broken:
        out.append((min(broken), "diverged"))
    return out


def render_compare(
    engine: Engine, refs: Sequence[str], metric: str | None = None
) -> tuple[bytes, str]:
    """One metric of several runs on one chart, and the metric's name (blocking). Without
    `metric`, the first one all runs logged, by meaning (a loss first). Raises ControlError."""
    from steward.training import bookkeeping
    from steward.training.control import ControlError

    with engine.connect() as conn:
        found = []
        for ref in refs:
            run = bookkeeping.find_run(conn, ref)
            if run is None:
                raise ControlError(f"There is no run {ref!r}. /runs lists them.")
            found.append(run)
        names = [set(store.metric_names(conn, r.id)) for r in found]
        common = set.intersection(*names)
        if metric is None:
            ranked = by_meaning(sorted(common))
            if not ranked:
                raise ControlError("These runs have no metric in common; name one.")
            metric = ranked[0]
        missing = [r.id for r, have in zip(found, names, strict=True) if metric not in have]
        if missing:
            ids = ", ".join(str(i) for i in missing)
            raise ControlError(f"Run {ids} has no metric {metric!r}.")
        curves_data = [(r, store.series(conn, r.id, [metric])[metric]) for r in found]
    from steward import plots

    curves = [
        plots.Curve(f"{r.id} {r.name}", steps, values, family=metric)
        for r, (steps, values) in curves_data
    ]
    units = {getattr(r, "step_unit", None) or "step" for r in found}
    x_label = units.pop() if len(units) == 1 else "step or epoch"
    return plots.render_curves(curves, title=f"{metric}: runs compared", x_label=x_label), metric


def render(engine: Engine, run: Any, names: Sequence[str] | None = None) -> bytes | None:
    """A PNG of the run's metrics (those that mean something, or `names`), or None when it
    logged none."""
    with engine.connect() as conn:
        series = store.series(conn, run.id, list(names) if names else None)
        if not series:
            return None
        marks = markers(conn, run.id, series)
    from steward import plots

    order = list(names) if names else by_meaning(list(series))
    curves = [plots.Curve(n, *series[n]) for n in order if n in series]
    title = f"{run.name} (run {run.id})"
    x_label = getattr(run, "step_unit", None) or "step"
    return plots.render_curves(curves, title=title, x_label=x_label, markers=marks)
