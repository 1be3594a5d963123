"""What the worker is doing, as data: uptime, store, features, next runs, outbox backlog.

Shared by `/status` in the chat and `python bot.py status` on the command line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from steward import __version__, db, heartbeats
from steward.heartbeats import JobHealth


@dataclass(frozen=True)
class FeatureStatus:
    name: str
    enabled: bool
    summary: str
    lines: tuple[str, ...]
    problem: str | None = None  # why it cannot do its job right now (Feature.problem)


@dataclass(frozen=True)
class StatusReport:
    version: str
    uptime: dt.timedelta | None
    store: str
    bot: str
    features: tuple[FeatureStatus, ...]
    next_runs: tuple[tuple[str, dt.datetime | None], ...]
    outbox_pending: int
    muted_until: dt.datetime | None = None
    # Each job's last successful tick, late ones flagged; empty before the first worker ran.
    jobs: tuple[JobHealth, ...] = ()
    # Start of the longest-running live worker; None when no worker runs.
    worker_since: dt.datetime | None = None


def gather(world, chat_id: int | str | None = None) -> StatusReport:
    """Collect the report (blocking: call from a thread)."""
    now = world.services.clock()
    features = tuple(
        FeatureStatus(
            f.name,
            f.enabled,
            f.summary,
            tuple(f.status() if f.enabled else ()),
            f.problem() if f.enabled else None,
        )
        for f in world.features
    )
    runs = sorted(world.scheduler.next_runs().items())
    outbox = world.outbox
    since = heartbeats.alive_since(world.engine, now)
    return StatusReport(
        version=__version__,
        uptime=now - world.started_at,
        store=db.describe(world.engine),
        bot=world.mode,
        features=features,
        next_runs=tuple(runs),
        outbox_pending=outbox.pending_count(),
        muted_until=outbox.muted_until(chat_id) if chat_id is not None else None,
        # Only scheduled jobs: a feature switched off leaves its health row behind.
        jobs=tuple(j for j in heartbeats.health(world.engine, now, since) if j.job in dict(runs)),
        worker_since=since,
    )
