"""What a run's numbers say: which metrics are losses, which value is best, NaN and spikes.

Pure functions over plain numbers; the watcher (job.py) feeds them what it reads from the store.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# A spike needs this much history to be judged, and must stand far above it: at least
# SPIKE_MADS median absolute deviations above the median AND at least double the median's size,
# so that a noisy loss wobbling by 10% never alarms, while a loss jumping from 0.3 to 5 does.
SPIKE_HISTORY = 8
SPIKE_WINDOW = 50
SPIKE_MADS = 10.0

_LOWER_IS_BETTER = re.compile(r"loss|err|mse|mae|rmse|perplexity|ppl|cer|wer|nll", re.IGNORECASE)
_HIGHER_IS_BETTER = re.compile(
    r"acc|f1|auc|precision|recall|score|iou|dice|bleu|rouge|(^|[_/.\-])map($|[_/.\-])",
    re.IGNORECASE,
)
_NOT_A_RESULT = re.compile(r"(^|[_/.\-])(lr|learning_rate|epoch|step|runtime|samples)", re.I)


def is_loss(name: str) -> bool:
    return "loss" in name.lower()


def direction(name: str) -> str | None:
    """ "min" when lower is better, "max" when higher is, None for what is not a result (lr)."""
    if _NOT_A_RESULT.search(name):
        return None
    if _LOWER_IS_BETTER.search(name):
        return "min"
    if _HIGHER_IS_BETTER.search(name):
        return "max"
    return None


@dataclass(frozen=True)
class Best:
    value: float
    step: int


def best(name: str, steps: Sequence[int], values: Sequence[float]) -> Best | None:
    """The best finite value of a metric and its step, when the metric has a direction."""
    way = direction(name)
    points = [(v, s) for s, v in zip(steps, values, strict=True) if math.isfinite(v)]
    if way is None or not points:
        return None
    value, step = min(points) if way == "min" else max(points, key=lambda p: (p[0], -p[1]))
    return Best(value, step)


def is_broken(value: float | None) -> bool:
    """NaN (stored as NULL) or infinite: the run has diverged."""
    return value is None or not math.isfinite(value)


def spike(history: Sequence[float], value: float) -> float | None:
    """The recent median when `value` is a spike far above `history`, else None."""
    recent = [v for v in history[-SPIKE_WINDOW:] if math.isfinite(v)]
    if len(recent) < SPIKE_HISTORY or not math.isfinite(value):
        return None
    median = statistics.median(recent)
    mad = statistics.median(abs(v - median) for v in recent)
    if value > median + max(SPIKE_MADS * mad, abs(median)) and value - median > 1e-12:
        return median
    return None


@dataclass(frozen=True)
class Finding:
    kind: str  # "nan" or "spike"
    metric: str
    step: int
    value: float | None
    median: float | None = None


def scan(
    history: dict[str, list[float]], points: Sequence[tuple[str, int, float | None]]
) -> list[Finding]:
    """Findings among new loss points (name, step, value), history extended as it goes.

    Only the first finding of each kind per metric is returned: one alert says enough.
    """
    found: dict[tuple[str, str], Finding] = {}
    for name, step, value in points:
        if not is_loss(name):
            continue
        past = history.setdefault(name, [])
        if is_broken(value):
            found.setdefault(("nan", name), Finding("nan", name, step, value))
            continue
        median = spike(past, value)
        if median is not None:
            found.setdefault(("spike", name), Finding("spike", name, step, value, median))
        past.append(value)
        del past[:-SPIKE_WINDOW]
    return list(found.values())
