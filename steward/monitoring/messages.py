"""What monitoring says: alert captions, recoveries, /checks and /check replies, the CLI table.

Pure functions of their arguments; every external value (check names, errors, values) is
escaped for Telegram HTML, and every time is shown in the user's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from steward.monitoring.alerts import ALERTING, PENDING, UNKNOWN, AlertState, Event, Sample
from steward.monitoring.checks import display_url
from steward.monitoring.redact import redact
from steward.monitoring.spec import CheckSpec
from steward.monitoring.uptime import percent, summary
from steward.telegram.formatting import CAPTION_LIMIT, TEXT_LIMIT, esc, visible_length
from steward.timeutil import human, local

UNITS = {"http": "ms", "tcp": "ms", "evm_lag": "blocks", "python": "", "tls": "days", "dns": "ms"}
ICONS = {"OK": "🟢", PENDING: "🟡", ALERTING: "🔴", UNKNOWN: "⚪"}
NO_CHECKS = "No checks yet: set CHECKS, or add one with /watch."
SHORT_LIST = 20  # up to this many checks, /checks is a plain list in their order
STATE_WORDS = {ALERTING: "down", UNKNOWN: "cannot evaluate", PENDING: "failing", "OK": "ok"}


def value_text(value: float | None, spec: CheckSpec | None) -> str:
    if value is None:
        return "—"
    shown = f"{value:.0f}" if abs(value) >= 100 or value == int(value) else f"{value:.3g}"
    unit = UNITS.get(spec.kind, "") if spec else ""
    return f"{shown} {unit}".strip()


def _why(details: dict, value: float | None, spec: CheckSpec | None) -> str:
    """The reason a sample is bad or unknown, in a few words."""
    if details.get("error"):
        return redact(str(details["error"]))  # an error may quote a URL with its key
    rules = spec.rules if spec else None
    if rules and value is not None:
        high, low = rules.alert_above, rules.alert_below
        if high is not None and value >= (
            rules.clear_below if rules.clear_below is not None else high
        ):
            return f"{value_text(value, spec)}, alert above {value_text(high, spec)}"
        if low is not None and value <= (
            rules.clear_above if rules.clear_above is not None else low
        ):
            return f"{value_text(value, spec)}, alert below {value_text(low, spec)}"
    return f"value {value_text(value, spec)}"


def event_line(event: Event, spec: CheckSpec | None, tz: dt.tzinfo) -> str:
    name = f"<b>{esc(event.check)}</b>"
    why = esc(_why(event.details, event.value, spec))
    since = esc(local(event.since, tz))
    if event.kind == "alert":
        return f"🔴 {name} is down since {since}: {why}"
    if event.kind == "still_down":
        return f"🔴 {name} is still down, for {esc(human(event.at - event.since))} now: {why}"
    if event.kind == "unknown":
        return f"⚪ {name} cannot be evaluated since {since}: {why}"
    took = f", after {esc(human(event.duration))}" if event.duration is not None else ""
    at = esc(local(event.at, tz))
    if event.kind == "recovered":
        return f"🟢 {name} is back ({at}){took} down."
    return f"🟢 {name} can be evaluated again ({at}){took}."


def render_events(
    events: Sequence[Event], specs: dict[str, CheckSpec], tz: dt.tzinfo, limit: int = CAPTION_LIMIT
) -> str:
    """One message for several events, cut to `limit` visible characters (the rest counted)."""
    lines: list[str] = []
    for n, event in enumerate(events):
        line = event_line(event, specs.get(event.check), tz)
        rest = len(events) - n - 1
        tail = f"\n…and {rest} more" if rest else ""
        if visible_length("\n".join([*lines, line]) + tail) > limit:
            lines.append(f"…and {len(events) - n} more")
            break
        lines.append(line)
    return "\n".join(lines)


def state_line(
    state: AlertState,
    spec: CheckSpec,
    tz: dt.tzinfo,
    now: dt.datetime,
    uptimes: dict[str, float | None] | None = None,
) -> str:
    icon = ICONS.get(state.state, "⚪") if state.last_status else "⚪"
    name = f"<b>{esc(spec.name)}</b>"
    if state.last_status is None:
        return f"{icon} {name}: no sample yet"
    since = f" since {esc(local(state.since, tz))}" if state.since else ""
    last = esc(value_text(state.last_value, spec))
    line = f"{icon} {name}: {STATE_WORDS.get(state.state, state.state)}{since}, last {last}"
    if uptimes and uptimes.get("24h") is not None:
        line += f", {esc(percent(uptimes['24h']))} 24h"
    if state.muted_until is not None and state.muted_until > now:
        line += f" 🔕 until {esc(local(state.muted_until, tz))}"
    return line


def render_checks(
    specs: Iterable[CheckSpec], states: dict[str, AlertState], tz: dt.tzinfo, now: dt.datetime
) -> str:
    """Every check on one page (a short list); see `checks_pages` for long ones."""
    return checks_pages(specs, states, tz, now)[0]


def checks_pages(
    specs: Iterable[CheckSpec],
    states: dict[str, AlertState],
    tz: dt.tzinfo,
    now: dt.datetime,
    limit: int = TEXT_LIMIT,
    uptimes: dict[str, dict[str, float | None]] | None = None,
) -> list[str]:
    """/checks as pages within one message each. A short list is one page in the order of the
    checks; past SHORT_LIST checks a count by state comes first, then the checks that need
    attention (down, cannot evaluate, failing), then the rest, with a page footer."""
    specs = list(specs)
    if not specs:
        return [NO_CHECKS]
    pairs = [(s, states.get(s.name) or AlertState(s.name)) for s in specs]
    up = uptimes or {}
    lines = [state_line(state, spec, tz, now, up.get(spec.name)) for spec, state in pairs]
    if len(lines) <= SHORT_LIST and visible_length("\n".join(lines)) <= limit:
        return ["\n".join(lines)]
    order = {ALERTING: 0, UNKNOWN: 1, PENDING: 2}
    ranked = sorted(
        range(len(pairs)),
        key=lambda i: (order.get(pairs[i][1].state, 3) if pairs[i][1].last_status else 4, i),
    )
    counts: dict[str, int] = {}
    for _, state in pairs:
        word = STATE_WORDS.get(state.state, state.state) if state.last_status else "no sample yet"
        counts[word] = counts.get(word, 0) + 1
    known = [*STATE_WORDS.values(), "no sample yet"]
    words = sorted(counts, key=lambda w: known.index(w) if w in known else len(known))
    header = f"{len(specs)} checks: " + ", ".join(f"{counts[w]} {w}" for w in words)
    room = limit - visible_length(header) - 60  # the footer's line
    pages: list[list[str]] = [[]]
    used = 0
    for i in ranked:
        size = visible_length(lines[i]) + 1
        if pages[-1] and used + size > room:
            pages.append([])
            used = 0
        pages[-1].append(lines[i])
        used += size
    out = []
    for n, page in enumerate(pages, 1):
        text = "\n".join([esc(header), *page])
        if len(pages) > 1:
            more = f": /checks {n + 1} for more" if n < len(pages) else ""
            text += f"\npage {n} of {len(pages)}{more}"
        out.append(text)
    return out


def describe(spec: CheckSpec, default_interval: int) -> str:
    """One check as a sentence (the /watch summary); URLs by scheme and host only, since RPC
    URLs often carry an API key."""
    if spec.kind in ("tcp", "tls"):
        target = f"{spec.host}:{spec.port}"
    elif spec.kind == "dns":
        target = str(spec.host)
    elif spec.kind == "python":
        target = str(spec.function)
    else:
        target = display_url(str(spec.url))
    line = f"<b>{esc(spec.name)}</b> ({esc(spec.kind)}): {esc(target)}"
    if spec.references:
        line += f", against {len(spec.references)} reference node(s)"
    line += f", every {esc(human(dt.timedelta(seconds=spec.interval or default_interval)))}"
    high = spec.rules.alert_above
    if high is not None:
        line += f", alert above {esc(value_text(high, spec))}"
    elif spec.kind == "http":
        line += ", judged by status code"
    return line


def render_result(
    sample: Sample,
    spec: CheckSpec,
    tz: dt.tzinfo,
    uptimes: dict[str, float | None] | None = None,
) -> str:
    """The answer to /check: what one run found, now (and the check's uptime so far)."""
    icon = {"ok": "🟢", "bad": "🔴"}.get(sample.status, "⚪")
    words = {"ok": "ok", "bad": "bad", "unknown": "cannot evaluate"}[sample.status]
    value = esc(value_text(sample.value, spec))
    line = f"{icon} <b>{esc(spec.name)}</b> ({esc(spec.kind)}): {words}, {value}"
    if sample.status != "ok":
        line += f"\n{esc(_why(sample.details, sample.value, spec))}"
    for ref in sample.details.get("references", []):
        got = ref.get("height", ref.get("error"))
        line += f"\n  reference {esc(ref['url'])}: {esc(got)}"
    if uptimes and any(v is not None for v in uptimes.values()):
        line += f"\nuptime {esc(summary(uptimes))}"
    return line + f"\n<i>{esc(local(sample.time, tz))}</i>"


def render_table(samples: Sequence[Sample], specs: dict[str, CheckSpec]) -> str:
    """Plain text for `python bot.py check`: one row per check."""
    rows = [("CHECK", "KIND", "STATUS", "VALUE", "DETAILS")]
    for s in samples:
        spec = specs.get(s.check)
        why = _why(s.details, s.value, spec) if s.status != "ok" else ""
        rows.append((s.check, spec.kind if spec else "", s.status, value_text(s.value, spec), why))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        (
            "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        ).rstrip()
        for r in rows
    )
