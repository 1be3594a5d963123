"""Monitoring's Telegram commands: /checks, /check, /hour /day /week, /csv, /watch, /unwatch;
per-check mutes.

The chat-level /mute and /unmute belong to the Telegram layer; they hand `/mute <check> 2h` and
`/unmute <check>` to `mute_check` and `unmute_check` here (the `services` hooks).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import TYPE_CHECKING

from telegram import Update
from telegram.ext import ContextTypes

from steward.features import Command
from steward.monitoring import charts, store
from steward.monitoring.messages import NO_CHECKS, checks_pages, render_result
from steward.monitoring.uptime import uptime
from steward.telegram.formatting import esc
from steward.timeutil import MuteTooLong, human, local, parse_duration, parse_mute

if TYPE_CHECKING:
    import datetime as dt

    from steward.monitoring.monitor import Monitor
    from steward.monitoring.spec import CheckSpec

CHECKS_USAGE = "Usage: /checks [page]"
CSV_USAGE = "Usage: /csv <check> [hour|day|week|30d]"
UNWATCH_USAGE = "Usage: /unwatch <name> (a check added with /watch)"
BUSY = "Finish the conversation in progress first, or /cancel it."
MAX_PANELS = 6


def _unknown(monitor: Monitor, name: str) -> str:
    names = ", ".join(sorted(monitor.specs)) or "none"
    return f"There is no check named {esc(name)!r}. Checks: {esc(names)}."


def pick(monitor: Monitor, names: list[str]) -> tuple[list[CheckSpec], str | None]:
    """The checks a command names (all when none is named, up to MAX_PANELS), or a sentence."""
    if not names:
        specs = list(monitor.specs.values())
    else:
        missing = [n for n in names if n not in monitor.specs]
        if missing:
            return [], _unknown(monitor, missing[0])
        specs = [monitor.specs[n] for n in dict.fromkeys(names)]
    if len(specs) > MAX_PANELS:
        return [], (
            f"That is {len(specs)} charts; name up to {MAX_PANELS} checks, "
            f"e.g. /day {esc(' '.join(list(monitor.specs)[:2]))}"
        )
    return specs, None


def window_of(text: str) -> dt.timedelta:
    """`hour`, `day`, `week` or a duration like `6h` or `30d`."""
    return charts.WINDOWS.get(text.lower()) or parse_duration(text)


def samples_csv(monitor: Monitor, name: str, window: dt.timedelta) -> tuple[bytes, int]:
    """The check's samples over the window as CSV (UTC and local times), and how many."""
    now = monitor.clock()
    rows = store.read_samples(monitor.engine, [name], now - window)[name]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "time_local", "status", "value", "details"])
    tz = monitor.settings.tz
    for s in rows:
        local_time = s.time.astimezone(tz).isoformat(timespec="seconds")
        value = "" if s.value is None else s.value
        details = json.dumps(s.details, sort_keys=True)
        writer.writerow(
            [s.time.isoformat(timespec="seconds"), local_time, s.status, value, details]
        )
    return out.getvalue().encode(), len(rows)


async def mute_check(monitor: Monitor, name: str, duration: str) -> str:
    """`/mute <check> <duration>`: no alerts from this check until then. Returns the reply."""
    await monitor.refresh()
    if name not in monitor.specs:
        return _unknown(monitor, name)
    try:
        length = parse_mute(duration)
    except MuteTooLong as exc:
        return esc(f"{exc}; use /mute {name} 30d or less (and /unmute {name} to end it).")
    except ValueError as exc:
        return esc(f"{exc}. Usage: /mute <check> 2h")
    now = monitor.clock()
    until = now + length
    await asyncio.to_thread(store.set_mute, monitor.engine, name, until, now)
    return (
        f"🔕 <b>{esc(name)}</b> muted for {esc(human(length))}, until "
        f"{esc(local(until, monitor.settings.tz))}. An outage still going then is announced."
    )


async def unmute_check(monitor: Monitor, name: str) -> str:
    await monitor.refresh()
    if name not in monitor.specs:
        return _unknown(monitor, name)
    await asyncio.to_thread(store.set_mute, monitor.engine, name, None, monitor.clock())
    return f"🔔 <b>{esc(name)}</b> alerts are on again."


async def unwatch_problem(monitor: Monitor, name: str) -> str | None:
    """Why /unwatch cannot remove `name` (the reply), or None when it is a watched check."""
    await monitor.refresh()
    if name in monitor.configured:
        return (
            f"<b>{esc(name)}</b> comes from CHECKS, so /unwatch cannot remove it: take it out "
            "of CHECKS (e.g. heroku config:set CHECKS=...) and the worker restarts without it."
        )
    if name not in monitor.watched:
        added = ", ".join(sorted(monitor.watched)) or "none"
        return (
            f"No check added with /watch is named {esc(name)!r}. Added with /watch: {esc(added)}."
        )
    return None


def build(monitor: Monitor) -> list[Command]:
    tz = monitor.settings.tz

    async def checks(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) > 1 or (args and not args[0].isdigit()):
            await update.effective_message.reply_text(CHECKS_USAGE)
            return
        await monitor.refresh()
        names = list(monitor.specs)
        states = await asyncio.to_thread(store.load_states, monitor.engine, names)
        now = monitor.clock()
        up = await asyncio.to_thread(uptime, monitor.engine, names, now)
        pages = checks_pages(monitor.specs.values(), states, tz, now, uptimes=up)
        page = int(args[0]) if args else 1
        if not 1 <= page <= len(pages):
            await update.effective_message.reply_text(
                f"There are {len(pages)} pages of checks: /checks 1 to /checks {len(pages)}."
            )
            return
        await update.effective_message.reply_html(pages[page - 1])

    async def check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) != 1:
            await update.effective_message.reply_text("Usage: /check <name>")
            return
        await monitor.refresh()
        if args[0] not in monitor.specs:
            await update.effective_message.reply_html(_unknown(monitor, args[0]))
            return
        spec = monitor.specs[args[0]]
        sample = await monitor.runner.run_one(spec)
        up = await asyncio.to_thread(uptime, monitor.engine, [spec.name], monitor.clock())
        await update.effective_message.reply_html(render_result(sample, spec, tz, up[spec.name]))

    def chart(window_name: str):
        window = charts.WINDOWS[window_name]

        async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await monitor.refresh()
            specs, problem = pick(monitor, context.args or [])
            if problem:
                await update.effective_message.reply_html(problem)
                return
            if not specs:
                await update.effective_message.reply_text(NO_CHECKS)
                return
            now = monitor.clock()
            title = f"last {window_name}"
            png = await asyncio.to_thread(
                charts.render, monitor.engine, specs, window, now, tz, title
            )
            names = ", ".join(s.name for s in specs)
            caption = f"{esc(names)}: last {window_name}, to {esc(local(now, tz))}"
            await update.effective_message.reply_photo(png, caption=caption, parse_mode="HTML")

        return show

    async def csv_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) not in (1, 2):
            await update.effective_message.reply_text(CSV_USAGE)
            return
        await monitor.refresh()
        if args[0] not in monitor.specs:
            await update.effective_message.reply_html(_unknown(monitor, args[0]))
            return
        try:
            window = window_of(args[1]) if len(args) == 2 else charts.WINDOWS["day"]
        except ValueError as exc:
            await update.effective_message.reply_text(f"{exc}. {CSV_USAGE}")
            return
        data, count = await asyncio.to_thread(samples_csv, monitor, args[0], window)
        await update.effective_message.reply_document(
            data,
            filename=f"{args[0]}.csv",
            caption=f"{count} samples of {esc(args[0])}, last {esc(human(window))}",
            parse_mode="HTML",
        )

    async def watch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat, user = update.effective_chat.id, update.effective_user.id
        if not await monitor.services.dialogs.start("watch", chat, user):
            await update.effective_message.reply_text(BUSY)

    async def unwatch(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) != 1:
            await update.effective_message.reply_text(UNWATCH_USAGE)
            return
        reply = await unwatch_problem(monitor, args[0])
        if reply is not None:
            await update.effective_message.reply_html(reply)
            return
        chat, user = update.effective_chat.id, update.effective_user.id
        if not await monitor.services.dialogs.start("unwatch", chat, user, args):
            await update.effective_message.reply_text(BUSY)

    return [
        Command("checks", "every check: state, last value, since when: /checks [page]", checks),
        Command("check", "run a check now: /check <name>", check),
        Command("hour", "chart of the last hour: /hour [check...]", chart("hour")),
        Command("day", "chart of the last day: /day [check...]", chart("day")),
        Command("week", "chart of the last week, hourly bands: /week [check...]", chart("week")),
        Command("csv", "a check's samples as CSV: /csv <check> [day]", csv_),
        Command("watch", "add a check step by step", watch),
        Command("unwatch", "remove a check added with /watch: /unwatch <name>", unwatch),
    ]
