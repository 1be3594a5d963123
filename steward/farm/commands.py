"""The farm's Telegram commands: /bots (one table), /bot NAME (one bot), /farm (the chart)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from telegram import Update
from telegram.ext import ContextTypes

from steward.farm import bots as farm_bots
from steward.farm import charts
from steward.farm.render import stats_lines, table_rows
from steward.features import Command, Services
from steward.telegram.formatting import esc
from steward.timeutil import local

if TYPE_CHECKING:
    from steward.farm.job import Farm

BOT_USAGE = "Usage: /bot NAME (/bots lists them)"


def _table(farm: Farm) -> str:
    now = farm.clock()
    with farm.engine.connect() as conn:
        rows = [farm_bots.stats(conn, b.name, now) for b in farm_bots.all_bots(conn)]
    lines = table_rows(rows, farm.settings.tz, main="main: the bot from the environment (/status)")
    return f"<pre>{esc(chr(10).join(lines))}</pre>"


def _one(farm: Farm, name: str) -> str:
    with farm.engine.connect() as conn:
        try:
            found = farm_bots.stats(conn, name, farm.clock())
        except farm_bots.BotError as exc:
            return esc(str(exc))
    return f"<pre>{esc(chr(10).join(stats_lines(found, farm.settings.tz)))}</pre>"


def build(farm: Farm, services: Services) -> list[Command]:
    async def bots(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_html(await asyncio.to_thread(_table, farm))

    async def bot(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        if len(args) != 1:
            await update.effective_message.reply_text(BOT_USAGE)
            return
        await update.effective_message.reply_html(await asyncio.to_thread(_one, farm, args[0]))

    async def farm_chart(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        now, tz = farm.clock(), farm.settings.tz
        png = await asyncio.to_thread(charts.render, farm.engine, now, tz)
        caption = f"farm: words stored and unused per bot, last 7 days to {esc(local(now, tz))}"
        await update.effective_message.reply_photo(png, caption=caption, parse_mode="HTML")

    return [
        Command("bots", "the farm's bots: posts today, words left, errors", bots),
        Command("bot", "one farm bot's settings and stats: /bot NAME", bot),
        Command("farm", "chart of words stored and unused per bot", farm_chart),
    ]
