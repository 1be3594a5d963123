"""The farm's Telegram commands: /bots (one table), /bot NAME (one bot, with a Pause or Resume
button), /farm (the chart)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from steward.farm import bots as farm_bots
from steward.farm import charts
from steward.farm.render import stats_lines, table_rows
from steward.features import Command, Services
from steward.telegram.formatting import esc
from steward.timeutil import local

if TYPE_CHECKING:
    from steward.farm.job import Farm

log = logging.getLogger("steward.farm")

BOT_USAGE = "Usage: /bot NAME (/bots lists them)"
STALE_BUTTON = "This button no longer does anything."


def _table(farm: Farm) -> str:
    now = farm.clock()
    with farm.engine.connect() as conn:
        rows = [farm_bots.stats(conn, b.name, now) for b in farm_bots.all_bots(conn)]
    lines = table_rows(rows, farm.settings.tz, main="main: the bot from the environment (/status)")
    return f"<pre>{esc(chr(10).join(lines))}</pre>"


def _one(farm: Farm, name: str) -> tuple[str, InlineKeyboardMarkup | None]:
    """The bot's card and its button; the message alone when there is no such bot."""
    with farm.engine.connect() as conn:
        try:
            found = farm_bots.stats(conn, name, farm.clock())
        except farm_bots.BotError as exc:
            return esc(str(exc)), None
    card = f"<pre>{esc(chr(10).join(stats_lines(found, farm.settings.tz)))}</pre>"
    return card, _controls(found.bot)


def _controls(bot: farm_bots.Bot) -> InlineKeyboardMarkup:
    # Bot names are at most 32 characters, so the data stays within Telegram's 64 bytes.
    action, label = ("resume", "▶️ Resume") if bot.paused else ("pause", "⏸ Pause")
    button = InlineKeyboardButton(label, callback_data=f"bot:{action}:{bot.name}")
    return InlineKeyboardMarkup([[button]])


def _set_paused(farm: Farm, name: str, paused: bool) -> bool:
    with farm.engine.begin() as conn:
        return farm_bots.set_paused(conn, name, paused, farm.clock())


def build(farm: Farm, services: Services) -> list[Command]:
    async def bots(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_html(await asyncio.to_thread(_table, farm))

    async def bot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) != 1:
            await update.effective_message.reply_text(BOT_USAGE)
            return
        text, controls = await asyncio.to_thread(_one, farm, args[0])
        await update.effective_message.reply_html(text, reply_markup=controls)

    async def bot_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """⏸ Pause / ▶️ Resume under /bot NAME: the same as `python bot.py bots pause NAME`."""
        query = update.callback_query
        _, action, name = f"{query.data}::".split(":")[:3]
        if action not in ("pause", "resume"):
            await query.answer(STALE_BUTTON)
            return
        try:
            changed = await asyncio.to_thread(_set_paused, farm, name, action == "pause")
        except farm_bots.BotError as exc:  # removed since the card was sent
            await query.answer(str(exc)[:200])
            await query.edit_message_reply_markup(None)
            return
        state = "paused" if action == "pause" else "running"
        if changed:
            log.info("farm: bot %s is %s (from the chat, user %s)", name, state, query.from_user.id)
        await query.answer(f"{name} {'is now' if changed else 'was already'} {state}")
        text, controls = await asyncio.to_thread(_one, farm, name)
        await query.edit_message_text(text, parse_mode="HTML", reply_markup=controls)

    async def farm_chart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        now, tz = farm.clock(), farm.settings.tz
        png = await asyncio.to_thread(charts.render, farm.engine, now, tz)
        caption = f"farm: words stored and unused per bot, last 7 days to {esc(local(now, tz))}"
        await update.effective_message.reply_photo(png, caption=caption, parse_mode="HTML")

    return [
        Command("bots", "the farm's bots: posts today, words left, errors", bots),
        Command("bot", "one farm bot's settings and stats: /bot NAME", bot, on_button=bot_button),
        Command("farm", "chart of words stored and unused per bot", farm_chart),
    ]
