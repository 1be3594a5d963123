"""What the training feature says: the live message, alerts, the final report, /runs and /run.

Pure functions of their arguments. Everything that comes from a training script (run names,
hosts, command lines, config, metric names, exception texts) is escaped for Telegram HTML, and
times are shown in the user's time zone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from steward.telegram.formatting import esc
from steward.timeutil import human, local
from steward.training import system
from steward.training.health import Best, Finding

ICONS = {
    "running": "▶️",
    "stalled": "⚠️",
    "finished": "✅",
    "stopped": "⏹",
    "crashed": "💥",
    "lost": "❓",
}
CONFIG_SHOWN = 8  # config entries in the live message (the rest in /run)
METRICS_SHOWN = 8
COMMAND_CHARS = 300


def number(value: float | None) -> str:
    """A metric value in a few significant digits (`nan`, `inf` as such)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
        return f"{value:.3e}"
    return f"{value:.4g}"


def title(run: Any) -> str:
    return f"<b>{esc(run.name)}</b> (run {run.id})"


def _config_line(config: Mapping[str, Any] | None, limit: int = CONFIG_SHOWN) -> str | None:
    if not config:
        return None
    items = list(config.items())
    parts = [f"{k}={_short(v)}" for k, v in items[:limit]]
    more = f" …+{len(items) - limit}" if len(items) > limit else ""
    return "config: " + esc(", ".join(parts)) + more


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _command(run: Any) -> str:
    text = run.command if len(run.command) <= COMMAND_CHARS else run.command[:COMMAND_CHARS] + "…"
    return f"<code>{esc(text)}</code>"


def unit(run: Any) -> str:
    """What the run's steps count: "epoch" for a Keras run, else "step"."""
    return getattr(run, "step_unit", None) or "step"


def metric_lines(
    latest: Mapping[str, tuple[int, float]],
    bests: Mapping[str, Best] | None = None,
    limit: int = METRICS_SHOWN,
    step_unit: str = "step",
) -> list[str]:
    """`loss 0.213 (best 0.201 at step 40)` per metric, losses first."""
    names = sorted(latest, key=lambda n: ("loss" not in n.lower(), n))
    lines = []
    for name in names[:limit]:
        step, value = latest[name]
        line = f"{esc(name)} <b>{esc(number(value))}</b>"
        best = (bests or {}).get(name)
        # Only when the latest value is not itself (as good as) the best.
        if best is not None and best.step != step and best.value != value:
            line += f" (best {esc(number(best.value))} at {esc(step_unit)} {best.step})"
        lines.append(line)
    if len(names) > limit:
        lines.append(f"…and {len(names) - limit} more (see /run)")
    return lines


def _progress(progress: Mapping[str, Any] | None) -> str | None:
    if not progress or progress.get("n") is None:
        return None
    desc = f"{esc(progress['desc'])}: " if progress.get("desc") else ""
    unit = f" {esc(progress['unit'])}" if progress.get("unit") else ""
    total = progress.get("total")
    if not total:
        return f"{desc}{progress['n']:,}{unit}"
    line = f"{desc}{progress['n']:,}/{total:,}{unit}"
    if progress.get("eta") is not None:
        return f"{line}, ETA {human(dt.timedelta(seconds=float(progress['eta'])))}"
    return f"{line} ({100 * progress['n'] / total:.0f}%)"


def render_live(
    run: Any,
    latest: Mapping[str, tuple[int, float]],
    now: dt.datetime,
    tz: dt.tzinfo,
) -> str:
    """The run's one message, edited in place while it runs, and once more when it ends."""
    state = run.state
    lines = [f"{ICONS.get(state, '•')} {title(run)} {esc(state)} on <b>{esc(run.host)}</b>"]
    lines.append(_command(run))
    config = _config_line(run.config)
    if config:
        lines.append(config)
    end = run.ended_at or now
    lines.append(f"started {esc(local(run.started_at, tz))}, {esc(human(end - run.started_at))}")
    steps = [s for s, _ in latest.values()]
    if steps:
        lines.append(f"{esc(unit(run))} {max(steps)}")
    progress = _progress(run.progress)
    if progress and run.ended_at is None:
        lines.append(progress)
    lines += metric_lines(latest, step_unit=unit(run))
    if machine := _machine(run):
        lines.append(machine)
    if run.ended_at is None:
        lines.append(f"<i>updated {esc(local(now, tz))}</i>")
    return "\n".join(lines)


def render_stalled(run: Any, now: dt.datetime, alive: bool) -> str:
    silent = human(now - run.last_heartbeat_at)
    if alive:
        # The client's thread still reaches the store: the process lives, its loop does not move.
        why = "the process is alive but its training loop has stopped reporting: stuck?"
    else:
        why = "stalled or killed?"
    text = (
        f"⚠️ {title(run)}: no sign of life for {esc(silent)} on <b>{esc(run.host)}</b> "
        f"(pid {run.pid}): {why}"
    )
    machine = _machine(run)
    return f"{text}\nlast seen: {machine}" if machine else text


def _machine(run: Any) -> str | None:
    """The machine's latest sample as one line (escaped), when the client sent one."""
    described = system.describe(getattr(run, "system", None))
    return esc(described) if described else None


def render_back(run: Any, silent_for: dt.timedelta | None) -> str:
    after = f" after {esc(human(silent_for))} of silence" if silent_for is not None else ""
    return f"▶️ {title(run)} is reporting again{after}."


ALERT_ICONS = {"info": "💬", "warning": "⚠️", "error": "🚨"}


def render_alert(run: Any, level: str, text: str) -> str:
    """A message the training script sent with run.alert()."""
    return f"{ALERT_ICONS.get(level, '💬')} {title(run)}: {esc(text)}"


def render_finding(run: Any, finding: Finding) -> str:
    metric = f"<b>{esc(finding.metric)}</b>"
    at = f"at {unit(run)} {finding.step}"
    if finding.kind in ("below", "above"):
        return (
            f"🔔 {title(run)}: {metric} is {esc(number(finding.value))} {at}, {finding.kind} "
            f"{esc(number(finding.median))} (your alert: {esc(finding.rule or '')})."
        )
    if finding.kind == "plateau":
        return (
            f"🔔 {title(run)}: {metric} is {esc(number(finding.value))} {at}, no better than "
            f"its best {esc(number(finding.median))} (your alert: {esc(finding.rule or '')})."
        )
    if finding.kind == "nan":
        return (
            f"💥 {title(run)}: {metric} is {esc(number(finding.value))} at {unit(run)} "
            f"{finding.step}. "
            "The run has probably diverged; /stop or /setlr it."
        )
    return (
        f"📈 {title(run)}: {metric} jumped to {esc(number(finding.value))} at {unit(run)} "
        f"{finding.step}, against a recent median of {esc(number(finding.median))}."
    )


def render_final(
    run: Any,
    latest: Mapping[str, tuple[int, float]],
    bests: Mapping[str, Best],
    tz: dt.tzinfo,
) -> str:
    """The final report (a photo caption: the outbox sends what does not fit as text)."""
    took = human((run.ended_at or run.last_heartbeat_at) - run.started_at)
    if run.state == "lost":
        lines = [
            f"{ICONS['lost']} {title(run)} is lost: not a word from pid {run.pid} on "
            f"{esc(run.host)} since {esc(local(run.ended_at, tz))}, after {esc(took)} of "
            f"training (killed, or the machine is gone?). Commands to it are refused; "
            f"/forget {run.id} removes it."
        ]
    else:
        verb = {"finished": "finished", "stopped": "was stopped", "crashed": "crashed"}[run.state]
        lines = [f"{ICONS[run.state]} {title(run)} {verb} after {esc(took)} on {esc(run.host)}"]
    steps = [s for s, _ in latest.values()]
    if steps:
        lines.append(f"{max(steps)} {esc(unit(run))}s")
    if run.state == "crashed":
        lines.append(f"<b>{esc(run.error_type or 'error')}</b>: {esc(run.error_message or '')}")
    lines += metric_lines(latest, bests, step_unit=unit(run))
    if run.state in ("crashed", "lost") and (machine := _machine(run)):
        lines.append(f"{'at the end' if run.state == 'crashed' else 'last seen'}: {machine}")
    if run.state == "crashed" and run.traceback_tail:
        lines.append(f"<pre>{esc(run.traceback_tail)}</pre>")
    return "\n".join(lines)


def render_outcome(run_name: str, run_id: int, kind: str, ok: bool | None, message: str) -> str:
    """A run's answer to a command, or why it never answered."""
    what = {"stop": "stop", "set_lr": "learning rate", "save": "save", "custom": "command"}[kind]
    head = f"<b>{esc(run_name)}</b> (run {run_id}), {what}"
    if ok:
        return f"👍 {head}: {esc(message or 'done')}"
    return f"✋ {head} not applied: {esc(message or 'no reason given')}"


def render_runs(
    rows: Sequence[Any],
    latest: Mapping[int, Mapping[str, tuple[int, float]]],
    tag: str | None = None,
) -> str:
    if not rows and tag is not None:
        return f"No run is tagged <code>{esc(tag)}</code>. Tag runs with Run(..., tags=[...])."
    if not rows:
        return (
            "No training runs yet. Add <code>from steward.training import Run</code> to a script."
        )
    lines = [f"<b>Training runs tagged {esc(tag)}</b>" if tag else "<b>Training runs</b>"]
    for run in rows:
        metrics = latest.get(run.id, {})
        shown = ", ".join(
            f"{esc(n)} {esc(number(v))}" for n, (_, v) in list(_losses_first(metrics))[:3]
        )
        lines.append(
            f"{ICONS.get(run.state, '•')} {run.id} <b>{esc(run.name)}</b> {esc(run.state)}"
            + "".join(f" #{esc(t)}" for t in (getattr(run, "tags", None) or []))
            + (f" · {shown}" if shown else "")
        )
    lines.append("/run &lt;id&gt; for details, /plot &lt;id&gt; for a chart")
    return "\n".join(lines)


def _losses_first(metrics: Mapping[str, tuple[int, float]]) -> Iterable[tuple[str, Any]]:
    return sorted(metrics.items(), key=lambda kv: ("loss" not in kv[0].lower(), kv[0]))


def render_run(
    run: Any,
    latest: Mapping[str, tuple[int, float]],
    bests: Mapping[str, Best],
    events: Sequence[Any],
    pending: Sequence[Any],
    now: dt.datetime,
    tz: dt.tzinfo,
) -> str:
    """Everything about one run, for /run."""
    lines = [f"{ICONS.get(run.state, '•')} {title(run)} {esc(run.state)}"]
    lines.append(f"host {esc(run.host)}, pid {run.pid}")
    lines.append(_command(run))
    config = _config_line(run.config, limit=30)
    if config:
        lines.append(config)
    end = run.ended_at or now
    lines.append(
        f"started {esc(local(run.started_at, tz))}, ran {esc(human(end - run.started_at))}"
    )
    if run.ended_at is None:
        lines.append(f"last report {esc(human(now - run.last_heartbeat_at))} ago")
    progress = _progress(run.progress)
    if progress and run.ended_at is None:
        lines.append(progress)
    if run.state == "crashed":
        lines.append(f"<b>{esc(run.error_type or 'error')}</b>: {esc(run.error_message or '')}")
    lines += metric_lines(latest, bests, limit=30, step_unit=unit(run))
    if machine := _machine(run):
        lines.append(machine)
    if pending:
        kinds = ", ".join(esc(c.kind) for c in pending)
        lines.append(f"waiting for the run to read: {kinds}")
    if events:
        lines.append("<b>Recent events</b>")
        lines += [f"{esc(local(e.time, tz))} {esc(e.level)}: {esc(e.message)}" for e in events]
    return "\n".join(lines)
