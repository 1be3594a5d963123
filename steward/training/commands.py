"""Training's Telegram commands: /runs, /run, /plot, /stop (confirmed in a dialog), /setlr,
/save and /cmd.

Handlers parse, call the domain (control.py, the store, charts) in a thread, render and reply.
A bad argument gets a short sentence from `ControlError`, never a traceback.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram import Update
from telegram.ext import ContextTypes

from steward.features import Command, Services
from steward.telegram.formatting import esc
from steward.training import bookkeeping, charts, control, health, messages, store
from steward.training.control import ControlError

BUSY = "Finish the conversation in progress first, or /cancel it."
SETLR_USAGE = f"Usage: /setlr [run] <rate>, where rate is {control.LR_FORMS}."
CMD_USAGE = "Usage: /cmd <run> <name> [text]: a custom command your training script handles."
FORGET_USAGE = "Usage: /forget <run>: deletes a run (lost, ended or stalled) and all it stored."
COMPARE_USAGE = "Usage: /compare <run> <run> [...] [metric]: two or more run ids, one metric."
RECENT = 10


def _latest_by_run(engine, rows) -> dict[int, dict]:
    with engine.connect() as conn:
        return {r.id: store.latest_metrics(conn, r.id) for r in rows}


def run_details(services: Services, run: Any) -> str:
    """The /run text (blocking)."""
    with services.engine.connect() as conn:
        latest = store.latest_metrics(conn, run.id)
        series = store.series(conn, run.id)
        events = store.recent_events(conn, run.id, limit=5)
        pending = bookkeeping.pending_commands(conn, run.id)
    bests = {n: b for n, (steps, values) in series.items() if (b := health.best(n, steps, values))}
    settings = services.settings
    return messages.render_run(run, latest, bests, events, pending, services.clock(), settings.tz)


def build(services: Services) -> list[Command]:
    engine, clock = services.engine, services.clock

    async def pick(update: Update, ref: str | None, *, active: bool = False) -> Any | None:
        try:
            return await asyncio.to_thread(control.pick_run, engine, ref, active=active)
        except ControlError as exc:
            await update.effective_message.reply_text(str(exc))
            return None

    async def send(update: Update, run: Any, kind: str, argument: dict | None) -> bool:
        chat = update.effective_chat.id
        try:
            await asyncio.to_thread(control.queue, engine, run.id, kind, argument, chat, clock())
        except ControlError as exc:
            await update.effective_message.reply_text(str(exc))
            return False
        return True

    async def runs(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        tag = args[0].lstrip("#") if args else None

        def recent():
            with engine.connect() as conn:
                return store.recent_runs(conn, RECENT, tag=tag)

        rows = await asyncio.to_thread(recent)
        latest = await asyncio.to_thread(_latest_by_run, engine, rows)
        await update.effective_message.reply_html(messages.render_runs(rows, latest, tag))

    async def compare(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        refs = [a for a in args if a.lstrip("#").isdigit()]
        rest = [a for a in args if not a.lstrip("#").isdigit()]
        if len(refs) < 2 or len(rest) > 1:
            await update.effective_message.reply_text(COMPARE_USAGE)
            return
        try:
            png, metric = await asyncio.to_thread(
                charts.render_compare, engine, refs, rest[0] if rest else None
            )
        except ControlError as exc:
            await update.effective_message.reply_text(str(exc))
            return
        caption = f"{esc(metric)} of runs " + ", ".join(r.lstrip("#") for r in refs)
        await update.effective_message.reply_photo(png, caption=caption, parse_mode="HTML")

    async def run_(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        run = await pick(update, args[0] if args else None)
        if run is not None:
            text = await asyncio.to_thread(run_details, services, run)
            await update.effective_message.reply_html(text)

    async def plot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        run = await pick(update, args[0] if args else None)
        if run is None:
            return
        wanted = args[1:]
        names, missing = await asyncio.to_thread(charts.unknown_metrics, engine, run.id, wanted)
        if missing:
            have = ", ".join(names) or "none yet"
            await update.effective_message.reply_text(
                f"Run {run.id} has no metric {missing[0]!r}. It has: {have}."
            )
            return
        png = await asyncio.to_thread(charts.render, engine, run, wanted or None)
        if png is None:
            await update.effective_message.reply_text(f"Run {run.id} has not logged a metric yet.")
            return
        caption = f"{messages.title(run)}, {esc(run.state)}"
        await update.effective_message.reply_photo(png, caption=caption, parse_mode="HTML")

    async def stop(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        run = await pick(update, args[0] if args else None, active=True)
        if run is None:
            return
        chat, user = update.effective_chat.id, update.effective_user.id
        if not await services.dialogs.start("stop", chat, user, [str(run.id)]):
            await update.effective_message.reply_text(BUSY)

    async def setlr(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) not in (1, 2):
            await update.effective_message.reply_text(SETLR_USAGE)
            return
        try:
            argument = control.parse_lr(args[-1])
        except ControlError as exc:
            await update.effective_message.reply_text(f"{exc}. {SETLR_USAGE}")
            return
        run = await pick(update, args[0] if len(args) == 2 else None, active=True)
        if run is not None and await send(update, run, "set_lr", argument):
            await update.effective_message.reply_html(
                f"Sent to {messages.title(run)}: learning rate {control.describe_lr(argument)}. "
                "It applies it at its next epoch or log, and I will tell you when it has."
            )

    async def save(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        run = await pick(update, args[0] if args else None, active=True)
        argument = {"path": args[1]} if len(args) > 1 else None
        if run is not None and await send(update, run, "save", argument):
            await update.effective_message.reply_html(
                f"Asked {messages.title(run)} to save a checkpoint; I will tell you where it went."
            )

    async def cmd(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) < 2:
            await update.effective_message.reply_text(CMD_USAGE)
            return
        try:
            name = control.custom_name(args[1])
        except ControlError as exc:
            await update.effective_message.reply_text(f"{exc}. {CMD_USAGE}")
            return
        run = await pick(update, args[0], active=True)
        argument = {"name": name, "text": " ".join(args[2:])}
        if run is not None and await send(update, run, "custom", argument):
            await update.effective_message.reply_html(
                f"Sent <code>{esc(name)}</code> to {messages.title(run)}."
            )

    async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) != 1:
            await update.effective_message.reply_text(FORGET_USAGE)
            return
        try:
            run = await asyncio.to_thread(control.forget, engine, args[0])
        except ControlError as exc:
            await update.effective_message.reply_text(str(exc))
            return
        await update.effective_message.reply_html(
            f"Forgot {messages.title(run)}: its metrics, events and commands are deleted."
        )

    return [
        Command("runs", "training runs: active and recent, or /runs <tag>", runs),
        Command("compare", "runs on one chart: /compare <id> <id> [metric]", compare),
        Command("run", "one run in detail: /run <id>", run_),
        Command("plot", "chart of a run: /plot <id> [metric...]", plot),
        Command("stop", "stop a run (asks first): /stop <id>", stop),
        Command("setlr", "change a run's learning rate: /setlr <id> 0.001 (or x0.5)", setlr),
        Command("save", "ask a run to save a checkpoint: /save <id> [name]", save),
        Command("cmd", "a custom command for a run: /cmd <id> <name> [text]", cmd),
        Command("forget", "delete a run that is not running: /forget <id>", forget),
    ]
