"""The bot's own commands: /start, /help, /status, /mute, /unmute.

Handlers parse, call the domain, render and reply; the render functions are pure and escape
everything that comes from outside.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

from telegram import Update
from telegram.ext import ContextTypes

from steward import status
from steward.features import Command
from steward.telegram.formatting import esc
from steward.timeutil import MuteTooLong, human, local, parse_mute

MUTE_USAGE = "Use /mute 30m (or 2h, 1d) to silence notifications here; /unmute to end it."
MUTE_TOO_LONG = "A mute lasts at most 30 days; use /mute 30d or less (and /unmute to end it)."


def render_help(commands: Sequence[Command]) -> str:
    lines = ["<b>What I can do</b>"]
    lines += [f"/{c.name} - {esc(c.description)}" for c in commands]
    return "\n".join(lines)


def render_status(report: status.StatusReport, tz: dt.tzinfo) -> str:
    lines = [f"<b>steward {esc(report.version)}</b>"]
    if report.uptime is not None:
        lines.append(f"up {human(report.uptime)} · bot: {esc(report.bot)}")
    lines.append(f"store: <code>{esc(report.store)}</code>")
    if report.worker_since is None:
        lines.append("⛔ no worker is running: nothing is posted, checked or sent until one starts")
    lines.append(f"outbox: {report.outbox_pending} waiting")
    if report.muted_until is not None:
        lines.append(f"🔕 muted here until {esc(local(report.muted_until, tz))}")
    for feature in report.features:
        mark = "⏸" if not feature.enabled else "⚠️" if feature.problem else "✅"
        lines.append(f"\n{mark} <b>{esc(feature.name)}</b>: {esc(feature.summary)}")
        lines += [f"  {esc(line)}" for line in feature.lines]
    if report.next_runs:
        lines.append("\n<b>Next runs</b>")
        for name, when in report.next_runs:
            shown = local(when, tz) if when else "paused"
            lines.append(f"  {esc(name)}: {esc(shown)}")
    if report.jobs:
        lines.append("\n<b>Last good runs</b>")
        for job in report.jobs:
            shown = local(job.last_ok_at, tz) if job.last_ok_at else "never"
            late = f" ⚠️ late (runs every {human(job.every)})" if job.late else ""
            lines.append(f"  {esc(job.job)}: {esc(shown)}{late}")
    return "\n".join(lines)


def core_commands(world) -> list[Command]:
    """The commands every steward bot has; features add their own after these."""

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user.first_name if update.effective_user else "there"
        text = f"Hello, {esc(user)}. I am your steward.\n\n" + render_help(world.commands)
        await update.effective_message.reply_html(text)

    async def help_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_html(render_help(world.commands))

    async def status_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        report = await asyncio.to_thread(status.gather, world, update.effective_chat.id)
        await update.effective_message.reply_html(render_status(report, world.settings.tz))

    async def mute(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        check_mute = world.services.mute_check
        if len(args) == 2 and check_mute is not None:
            reply = await check_mute(args[0], args[1])
            await update.effective_message.reply_html(reply)
            return
        if len(args) != 1:
            await update.effective_message.reply_text(MUTE_USAGE)
            return
        try:
            length = parse_mute(args[0])
        except MuteTooLong:
            await update.effective_message.reply_text(MUTE_TOO_LONG)
            return
        except ValueError as exc:
            await update.effective_message.reply_text(f"{exc}. {MUTE_USAGE}")
            return
        until = world.services.clock() + length
        await asyncio.to_thread(world.outbox.mute, update.effective_chat.id, until)
        await update.effective_message.reply_html(
            f"🔕 Muted for {esc(human(length))}, until "
            f"{esc(local(until, world.settings.tz))}. Urgent alerts still come through, "
            "marked as such; the rest is held and summed up at /unmute."
        )

    async def unmute(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        check_unmute = world.services.unmute_check
        if len(args) == 1 and check_unmute is not None:
            await update.effective_message.reply_html(await check_unmute(args[0]))
            return
        held = await asyncio.to_thread(world.outbox.unmute, update.effective_chat.id)
        more = f" {held} held notification(s) follow as a summary." if held else ""
        await update.effective_message.reply_text("🔔 Notifications are on again." + more)

    return [
        Command("start", "greeting and what I can do", start),
        Command("help", "the list of commands", help_),
        Command("status", "uptime, store, features and next runs", status_),
        Command("mute", "silence notifications here: /mute 2h (or /mute <check> 2h)", mute),
        Command("unmute", "end a mute: /unmute (or /unmute <check>)", unmute),
    ]
