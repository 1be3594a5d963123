"""Posting's assembly: the feature the worker runs, built from the shared services.

The service itself (what a tick, a recovery and a manual post do) is `poster.Poster`; this module
only wires it to the scheduler, the commands and /status.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from steward.features import Feature, Job, Services
from steward.posting import commands
from steward.posting.poster import Poster
from steward.posting.store import TICK_JOB, TICK_KEY

__all__ = ["TICK_JOB", "TICK_KEY", "build_feature"]


def build_feature(services: Services) -> Feature:
    poster = Poster.from_services(services)

    async def start() -> None:
        await asyncio.to_thread(poster.recover)

    async def tick(scheduled_at: dt.datetime) -> None:
        await asyncio.to_thread(poster.scheduled_tick, scheduled_at)

    every = dt.timedelta(minutes=services.settings.post_interval)
    return Feature(
        "posting",
        True,
        poster.summary(),
        commands=commands.build(poster, services),
        jobs=[Job(TICK_JOB, every, tick)],
        dialogs=[("post", commands.post_dialog(poster), commands.POST_DIALOG_VERSION)],
        start=start,
        status=poster.status_lines,
    )
