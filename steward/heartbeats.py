"""The worker watching itself, in the store: ticks that finish, ticks a dead worker left behind,
each job's last successful tick, and which workers are alive.

- A claimed tick beats (`beat`) while it runs and is marked finished when it ends. A claim whose
  beats stopped before it finished belongs to a worker that died (SIGKILL, a lost dyno): another
  worker takes it over (`take_over`) and runs the tick again, for every feature, as long as it
  is its job's newest claimed tick.
- `job_heartbeats` keeps each job's interval and last successful tick; a job whose last good
  tick is more than two intervals old is late (`/status`, `python bot.py status`, and one urgent
  message to the owner per late spell).
- `workers` holds one row per running worker, refreshed by its watchdog; with none fresh,
  `python bot.py status` says plainly that no worker runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db

BEAT_EVERY = dt.timedelta(seconds=10)
# Silence after which a running tick's claim counts as abandoned (several missed beats).
ABANDONED_AFTER = dt.timedelta(seconds=45)
WATCH_EVERY = dt.timedelta(seconds=15)
WORKER_GONE_AFTER = dt.timedelta(minutes=2)  # a worker's row refreshes every WATCH_EVERY
LATE_INTERVALS = 2
LATE_AT_LEAST = dt.timedelta(minutes=2)  # fast jobs are not late over a few seconds
CLAIMS_LOOKED_AT = dt.timedelta(days=1)

claims, health_t, workers_t = db.job_claims, db.job_heartbeats, db.workers


@dataclass(frozen=True)
class JobHealth:
    job: str
    every: dt.timedelta
    last_ok_at: dt.datetime | None
    last_failure: str | None
    late: bool


# -- ticks ---------------------------------------------------------------------------------------


def _claim(job: str, scheduled_at: dt.datetime, worker: str):
    c = claims.c
    return sa.update(claims).where(
        c.job == job, c.scheduled_at == scheduled_at, c.claimed_by == worker
    )


def beat(engine: Engine, job: str, scheduled_at: dt.datetime, worker: str, now: dt.datetime):
    with engine.begin() as conn:
        conn.execute(_claim(job, scheduled_at, worker).values(heartbeat_at=now))


def finished(
    engine: Engine,
    job: str,
    scheduled_at: dt.datetime,
    worker: str,
    every: dt.timedelta,
    now: dt.datetime,
    failure: str | None = None,
    again: bool = False,
) -> None:
    """Record how the tick went in the job's health row, and mark it finished unless it should
    run `again` (it failed on the store: its claim stays open, and the watchdog re-runs it once
    its beats have been silent for ABANDONED_AFTER)."""
    h = health_t.c
    with engine.begin() as conn:
        if not again:
            conn.execute(
                _claim(job, scheduled_at, worker).values(finished_at=now, heartbeat_at=now)
            )
        failed = {} if failure is None else dict(last_failed_at=now, last_failure=failure[:500])
        db.upsert(
            conn,
            health_t,
            {"job": job},
            every_seconds=every.total_seconds(),
            updated_at=now,
            **failed,
        )
        if failure is None:  # a re-run of an older tick must not move the mark back
            conn.execute(
                sa.update(health_t)
                .where(h.job == job, sa.or_(h.last_ok_at.is_(None), h.last_ok_at < scheduled_at))
                .values(last_ok_at=scheduled_at, late_told_at=None)
            )


def abandoned(
    engine: Engine, jobs: Iterable[str], now: dt.datetime
) -> list[tuple[str, dt.datetime]]:
    """Claimed ticks of `jobs` that never finished and whose worker stopped beating.

    Only a job's newest claimed tick: once a later tick was claimed, the job has moved on, and
    running an older one again would only redo (or undo) what the later tick did.
    """
    c = claims.c
    newer = claims.alias("newer")
    silent = sa.func.coalesce(c.heartbeat_at, c.claimed_at) < now - ABANDONED_AFTER
    moved_on = (
        sa.select(newer.c.job)
        .where(newer.c.job == c.job, newer.c.scheduled_at > c.scheduled_at)
        .exists()
    )
    query = (
        sa.select(c.job, c.scheduled_at)
        .where(c.job.in_(list(jobs)), c.finished_at.is_(None), silent, ~moved_on)
        .where(c.claimed_at > now - CLAIMS_LOOKED_AT)
        .order_by(c.scheduled_at)
    )
    with engine.connect() as conn:
        return [(row.job, row.scheduled_at) for row in conn.execute(query)]


def take_over(
    engine: Engine, job: str, scheduled_at: dt.datetime, worker: str, now: dt.datetime
) -> bool:
    """Claim an abandoned tick for `worker`; True for the one worker that wins it."""
    c = claims.c
    silent = sa.func.coalesce(c.heartbeat_at, c.claimed_at) < now - ABANDONED_AFTER
    with engine.begin() as conn:
        return (
            conn.execute(
                sa.update(claims)
                .where(c.job == job, c.scheduled_at == scheduled_at, c.finished_at.is_(None))
                .where(silent)
                .values(claimed_by=worker, claimed_at=now, heartbeat_at=now)
            ).rowcount
            == 1
        )


# -- jobs and workers ------------------------------------------------------------------------------


def register(engine: Engine, job: str, every: dt.timedelta, now: dt.datetime) -> None:
    """Record a job's interval (its health row exists before its first tick ends)."""
    with engine.begin() as conn:
        db.upsert(conn, health_t, {"job": job}, every_seconds=every.total_seconds(), updated_at=now)


def seen(engine: Engine, worker: str, started_at: dt.datetime, now: dt.datetime) -> None:
    """This worker is alive; rows of workers gone for a day are dropped."""
    with engine.begin() as conn:
        db.upsert(conn, workers_t, {"worker": worker}, started_at=started_at, seen_at=now)
        conn.execute(sa.delete(workers_t).where(workers_t.c.seen_at < now - dt.timedelta(days=1)))


def gone(engine: Engine, worker: str) -> None:
    """This worker stops (a clean stop; a killed one ages out)."""
    with engine.begin() as conn:
        conn.execute(sa.delete(workers_t).where(workers_t.c.worker == worker))


def alive_since(engine: Engine, now: dt.datetime) -> dt.datetime | None:
    """Start of the longest-running live worker, or None when no worker runs."""
    w = workers_t.c
    with engine.connect() as conn:
        return conn.scalar(
            sa.select(sa.func.min(w.started_at)).where(w.seen_at >= now - WORKER_GONE_AFTER)
        )


def health(engine: Engine, now: dt.datetime, since: dt.datetime | None) -> list[JobHealth]:
    """Every job's health; a job without a good tick is judged from `since` (workers' start)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(health_t).order_by(health_t.c.job)).all()
    report = []
    for row in rows:
        every = dt.timedelta(seconds=row.every_seconds)
        # Late counts from the later of the last good tick and the start of the live workers:
        # after a night with no worker, a job is not late before a worker had time to run it.
        allowed = max(every * LATE_INTERVALS, LATE_AT_LEAST)
        reference = max(row.last_ok_at, since) if row.last_ok_at and since else since
        late = reference is not None and now - reference > allowed
        report.append(JobHealth(row.job, every, row.last_ok_at, row.last_failure, late))
    return report


def tell_late(engine: Engine, outbox, job: JobHealth, text: str, now: dt.datetime) -> bool:
    """Tell the owner once that `job` is late: the mark and the urgent message commit together,
    so of several workers exactly one sends it, and a crash cannot leave one without the other."""
    h = health_t.c
    since = job.last_ok_at.isoformat() if job.last_ok_at else "never"
    with engine.begin() as conn:
        told = conn.execute(
            sa.update(health_t)
            .where(h.job == job.job, h.late_told_at.is_(None))
            .values(late_told_at=now)
        ).rowcount
        if told != 1:
            return False
        outbox.notify_in(conn, text, urgent=True, key=f"late:{job.job}:{since}")
    outbox.wake()
    return True
