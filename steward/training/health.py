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
# SPIKE_MADS median absolute deviations above the median AND SPIKE_RISE above it, so that a
# noisy loss wobbling by 10% never alarms, while a loss jumping from 2.1 to 3.5 does.
SPIKE_HISTORY = 8
SPIKE_WINDOW = 50
SPIKE_MADS = 10.0
# ...and at least this fraction above the median: a language model's loss going from 2.1 to 3.5
# (+67%) is a spike, while a loss drifting 10-20% around its median is not.
SPIKE_RISE = 0.5

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
    if value > median + max(SPIKE_MADS * mad, SPIKE_RISE * abs(median)) and value - median > 1e-12:
        return median
    return None


@dataclass(frozen=True)
class Finding:
    kind: str  # "nan", "spike", or an alert rule's: "below", "above", "plateau"
    metric: str
    step: int
    value: float | None
    median: float | None = None  # spike: the recent median; plateau: the best value
    rule: str | None = None  # the rule as the script wrote it


# --- alert rules from Run(alerts={"val_acc": "below 0.8 after step 1000", ...}) ---------------

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_THRESHOLD = re.compile(
    rf"^(below|above)\s+({_NUMBER})(?:\s+after\s+(?:step\s+|epoch\s+)?(\d+))?$", re.IGNORECASE
)
_PLATEAU = re.compile(r"^no improvement for\s+(\d+)\s+(?:evals?|logs?|values?|points?)$", re.I)
RULE_FORMS = "'below 0.8', 'above 2.5 after step 1000' or 'no improvement for 5 evals'"


@dataclass(frozen=True)
class Rule:
    metric: str
    kind: str  # "below", "above" or "plateau"
    text: str
    limit: float = 0.0
    after: int = 0
    evals: int = 0


def parse_rule(metric: str, text: str) -> Rule:
    """One alert rule, or ValueError with one sentence saying what is wrong."""
    raw = " ".join(str(text).split())
    if m := _THRESHOLD.match(raw):
        return Rule(metric, m.group(1).lower(), raw, float(m.group(2)), int(m.group(3) or 0))
    if m := _PLATEAU.match(raw):
        evals = int(m.group(1))
        if not 1 <= evals <= SPIKE_WINDOW:
            raise ValueError(
                f"alert for {metric!r}: 'no improvement for N evals' takes N from 1 to "
                f"{SPIKE_WINDOW}, not {evals}"
            )
        if direction(metric) is None:
            raise ValueError(
                f"alert for {metric!r}: its name does not say whether higher or lower is better "
                "(loss, acc, f1 …), so 'no improvement' cannot be judged; use 'below' or 'above'"
            )
        return Rule(metric, "plateau", raw, evals=evals)
    raise ValueError(f"alert for {metric!r}: {text!r} is not a rule; write {RULE_FORMS}")


def parse_rules(alerts: dict[str, str] | None) -> list[Rule]:
    return [parse_rule(str(metric), text) for metric, text in (alerts or {}).items()]


def check_rules(
    rules: Sequence[Rule],
    history: dict[str, list[float]],
    points: Sequence[tuple[str, int, float | None]],
    notes: dict,
) -> list[Finding]:
    """Findings of the alert rules among new points. A threshold alerts once per run; a plateau
    once until the metric improves again (what was said is kept in `notes`)."""
    said = notes.setdefault("rules", {})
    by_metric = {r.metric: r for r in rules}
    found = []
    for name, step, value in points:
        rule = by_metric.get(name)
        if rule is None or is_broken(value):
            continue
        past = history.setdefault(name, [])
        if rule.kind in ("below", "above"):
            crossed = value < rule.limit if rule.kind == "below" else value > rule.limit
            if crossed and step >= rule.after and not said.get(name):
                said[name] = True
                found.append(Finding(rule.kind, name, step, value, rule.limit, rule.text))
        else:
            better = min if direction(name) == "min" else max
            seen = [*past[-SPIKE_WINDOW:], value]
            top = better(seen)
            if past and value == top and value != better(past):
                said.pop(name, None)  # a new best: the next plateau is news again
            since = len(seen) - 1 - seen.index(top)
            if since >= rule.evals and not said.get(name):
                said[name] = True
                found.append(Finding("plateau", name, step, value, top, rule.text))
        past.append(value)
        del past[:-SPIKE_WINDOW]
    return found


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
