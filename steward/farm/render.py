"""The farm as text: the `bots list` / `/bots` table and a bot's `show` lines. Plain text; the
chat wraps it in <pre> after escaping. No secret value ever reaches here, only secret names."""

from __future__ import annotations

import datetime as dt

from steward.farm.bots import Stats
from steward.timeutil import local

ERROR_SHOWN = 40  # characters of a last error in the table (all of it in `show`)


def _when(moment: dt.datetime | None, tz: dt.tzinfo, paused: bool) -> str:
    if paused:
        return "paused"
    return "-" if moment is None else moment.astimezone(tz).strftime("%m-%d %H:%M")


def table_rows(rows: list[Stats], tz: dt.tzinfo, *, main: str | None = None) -> list[str]:
    head = ("bot", "today", "words left", "next post", "last error")
    lines = [head]
    for s in rows:
        error = (s.last_error or "-").replace("\n", " ")
        if len(error) > ERROR_SHOWN:
            error = error[: ERROR_SHOWN - 1] + "…"
        when = _when(s.next_post, tz, s.bot.paused)
        left = str(s.words_unused) if s.bot.reads_timeline else "-"
        lines.append((s.bot.name, str(s.posts_today), left, when, error))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(line[:4], widths, strict=True)) + "  " + line[4]
        for line in lines
    ]
    if main is not None:
        out.append(main)
    if not rows:
        out.append("no farm bots yet: python bot.py bots add NAME --template '...'")
    return [line.rstrip() for line in out]


def stats_lines(s: Stats, tz: dt.tzinfo) -> list[str]:
    b = s.bot
    if b.words is not None:
        source = f"its own words ({len([w for w in b.words.split(',') if w.strip()])})"
    elif b.feed_url is not None:
        source = f"the feed {b.feed_url}"
    else:
        source = "the shared reader's timeline"
    cap = f"of {b.monthly_limit}" if b.monthly_limit else "(no monthly cap)"
    lines = [
        f"bot {b.name}: {'paused' if b.paused else 'running'}",
        f"template: {b.template}",
        f"{b.per_tick} post(s) every {b.interval_min} min to {', '.join(b.targets)}",
        f"words from {source}",
        f"posts: {s.posts_today} today, {s.posts_month} this month {cap}, {s.posts_total} in all",
        f"reader words stored: {s.words_stored}, not yet used by {b.name}: {s.words_unused}"
        if b.reads_timeline
        else f"reader words stored: {s.words_stored} ({b.name} does not use them)",
        f"next post: {_when(s.next_post, tz, b.paused)}",
        f"tokens stored: {', '.join(s.secrets) if s.secrets else 'none'}",
    ]
    if s.last_error:
        lines.append(f"last error ({local(s.last_error_at, tz)}): {s.last_error}")
    return lines
