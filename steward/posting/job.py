"""Posting's assembly: the feature the worker runs, built from the shared services.

The service itself (what a tick, a recovery and a manual post do) is `poster.Poster`; this module
only wires it to the scheduler, the commands and /status.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from steward.features import Feature, Job, Services
from steward.posting import commands, problems, reader, schedule
from steward.posting.poster import Poster
from steward.posting.store import TICK_JOB, TICK_KEY
from steward.posting.wiring import DRY_RUN_HINT, SHOWN

__all__ = ["TICK_JOB", "TICK_KEY", "build_feature", "status_lines", "summary"]


def build_feature(services: Services) -> Feature:
    poster = Poster.from_services(services)

    async def start() -> None:
        await asyncio.to_thread(poster.recover)

    async def stop() -> None:
        poster.stopping.set()

    async def tick(scheduled_at: dt.datetime) -> None:
        await asyncio.to_thread(poster.scheduled_tick, scheduled_at)

    plan = poster.schedule
    every = schedule.LOOK if plan.planned_here else plan.interval
    return Feature(
        "posting",
        True,
        summary(poster),
        commands=commands.build(poster, services),
        jobs=[Job(TICK_JOB, every, tick)],
        dialogs=[("post", commands.post_dialog(poster), commands.POST_DIALOG_VERSION)],
        start=start,
        stop=stop,
        status=lambda: status_lines(poster),
        problem=lambda: problem(poster),
    )


def summary(poster: Poster) -> str:
    s = poster.settings
    line = (
        f"{s.tweets_per_tick} post(s) every {s.post_interval} min from "
        f"{poster.parts.template_shown} and {poster.parts.words_shown}"
    )
    if poster.dry_run:
        return f"{line}; {DRY_RUN_HINT}"
    targets = [
        f"Telegram {s.post_telegram_chat}" if c == "telegram" else SHOWN.get(c, c)
        for c in poster.channels
    ]
    return f"{line} to {' and '.join(targets)}"


def problem(poster: Poster) -> str | None:
    """Why posting is stuck (as told to the owner), or None while it posts. A rate limit or the
    monthly cap is posting working as configured, not a problem."""
    if stuck := poster.load(problems.PROBLEM_KEY):
        return stuck["reason"]
    if trouble := reader_trouble(poster):
        return trouble["reason"]
    if refused := problems.refused_channels(poster):
        return f"{', '.join(SHOWN[c] for c in refused)} refused the credentials"
    return None


def reader_trouble(poster: Poster) -> dict | None:
    """The shared reader's failure ({"reason", "since"}) while main draws from it."""
    if poster.settings.x_reader_access_token is None:
        return None
    return poster.load(reader.TROUBLE_KEY) or None


def status_lines(poster: Poster) -> list[str]:
    """Posting's lines in /status: the month's X count, the next tick, what holds it."""
    lines = []
    if "x" in poster.parts.publishers:
        limit = poster.settings.post_monthly_limit
        cap = f"of {limit}" if limit else "(no monthly cap)"
        lines.append(f"X posts this month: {poster.month_count()} {cap}")
    when = poster.next_runs().get(TICK_JOB)
    lines.append(f"next tick: {when.isoformat(timespec='minutes') if when else 'not planned'}")
    if (paused := poster.paused()) is not None:
        lines.append(f"paused by {paused.get('by')} since {paused.get('at', '')[:16]}")
    lines += [f"{channel}: {reason}" for channel, reason in poster.blocked().items()]
    if trouble := reader_trouble(poster):
        lines.insert(0, f"⚠️ reader failing since {trouble['since'][:16]}: {trouble['reason']}")
    if (stuck := problems.status_line(poster.load(problems.PROBLEM_KEY))) is not None:
        lines.insert(0, stuck)
    return lines
