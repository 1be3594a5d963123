"""Scheduled ticks: APScheduler 3 with a persistent job store and exactly-once tick claims.

1. Jobs live in the `apscheduler_jobs` table on the same database, so an interval job's next run
   time survives a restart: a 30-minute job neither runs at every deploy nor never runs when
   restarts come more often than every 30 minutes (a missed run fires once at start).
2. Missed runs coalesce into one, and one instance of a job runs at a time.
3. Before a tick runs, the worker inserts (job, scheduled time) into `job_claims`; the primary key
   lets exactly one of several workers (Heroku overlaps old and new dynos at every deploy) win.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import sqlalchemy as sa
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from steward import db, heartbeats
from steward.features import Clock, Job
from steward.jobstore import SharedEngineJobStore, StoreScheduler, TickExecutor
from steward.logs import one_line
from steward.store_health import StoreHealth

log = logging.getLogger("steward.scheduler")
JOBS_TABLE = "apscheduler_jobs"
CLAIMS_KEPT = dt.timedelta(days=7)


def tick(name: str) -> None:
    """The callable every persisted job names.

    The job store keeps a textual reference to a function; the live work of a job belongs to the
    running worker, so `TickExecutor` routes each job to the worker's tick for that name instead
    of calling this. Reaching this function means the job ran outside a steward worker.
    """
    raise RuntimeError(f"job {name!r} must run inside the steward worker's scheduler")


def claim(engine: Engine, job: str, scheduled_at: dt.datetime, worker: str, now: dt.datetime):
    """Insert the claim for one tick; True when this worker won it."""
    try:
        with engine.begin() as conn:
            conn.execute(
                db.job_claims.insert().values(
                    job=job,
                    scheduled_at=scheduled_at,
                    claimed_by=worker,
                    claimed_at=now,
                    heartbeat_at=now,
                )
            )
        return True
    except sa.exc.IntegrityError:
        return False


def claimed(engine: Engine, job: str, scheduled_at: dt.datetime) -> bool:
    """Was the tick of `job` at `scheduled_at` claimed (by any worker)?"""
    near = dt.timedelta(seconds=1)  # the job store keeps times as float seconds
    c = db.job_claims.c
    stmt = sa.select(c.job).where(
        c.job == job, c.scheduled_at.between(scheduled_at - near, scheduled_at + near)
    )
    with engine.connect() as conn:
        return conn.execute(stmt.limit(1)).first() is not None


def last_claim(engine: Engine, job: str) -> dt.datetime | None:
    """The scheduled time of the newest claimed tick of `job`, or None."""
    c = db.job_claims.c
    stmt = sa.select(c.scheduled_at).where(c.job == job).order_by(c.scheduled_at.desc())
    with engine.connect() as conn:
        return conn.scalar(stmt.limit(1))


class Scheduler:
    """The worker's schedule: register `Job`s, start, ask for next runs, stop gracefully."""

    def __init__(
        self,
        engine: Engine,
        *,
        worker_id: str,
        clock: Clock = db.utcnow,
        store_retry: float = 5.0,
        health: StoreHealth | None = None,
    ) -> None:
        self.engine = engine
        self.health = health or StoreHealth(worker_id)
        self.store_retry = store_retry
        self.worker_id = worker_id
        self.clock = clock
        self._ticks: dict[str, Job] = {}
        self._running: set[asyncio.Task] = set()
        self._rescued: set[asyncio.Task] = set()  # re-runs and records of ticks' ends
        self._stopping = False
        self._aps = StoreScheduler(
            store_retry=store_retry,
            jobstores={"default": SharedEngineJobStore(engine=engine, tablename=JOBS_TABLE)},
            executors={"default": TickExecutor(self._run)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
        )

    @property
    def jobs(self) -> frozenset[str]:
        """Names of the jobs this worker runs."""
        return frozenset(self._ticks)

    def add(self, job: Job) -> None:
        if job.name in self._ticks:
            raise ValueError(f"two jobs are named {job.name!r}")
        self._ticks[job.name] = job

    async def start(self) -> None:
        """Load the persisted jobs, reconcile them with the registered ones, and start ticking."""
        # Started in a thread: the job store creates its table on start, a store call.
        self._aps._eventloop = asyncio.get_running_loop()
        await asyncio.to_thread(self._aps.start, paused=True)
        await asyncio.to_thread(self._reconcile)
        self._aps.resume()

    def _reconcile(self) -> None:
        now = self.clock()
        for name, spec in self._ticks.items():
            heartbeats.register(self.engine, name, spec.every, now)
        stored = {job.id: job for job in self._aps.get_jobs()}
        for name, spec in self._ticks.items():
            old = stored.pop(name, None)
            if old is not None and getattr(old.trigger, "interval", None) == spec.every:
                log.debug("job %s keeps its schedule: next run %s", name, old.next_run_time)
                self._catch_up(old, spec, now)
                continue
            # A new job (or a changed interval) runs once now, then every interval.
            self._aps.add_job(
                tick,
                IntervalTrigger(seconds=spec.every.total_seconds(), start_date=now),
                args=[name],
                id=name,
                name=name,
                replace_existing=True,
                next_run_time=now,
            )
            log.info("job %s scheduled every %s", name, spec.every)
        for name in stored:  # a feature that was switched off leaves its job behind
            self._aps.remove_job(name)
            log.info("job %s removed: its feature is off", name)

    def _catch_up(self, job, spec: Job, now: dt.datetime) -> None:
        """Run the last scheduled tick again if it was taken but never claimed.

        APScheduler stores the next run time when it hands a run over, a moment before the
        claim is written; a SIGKILL in between (or a stop that declined the run) would lose
        that tick for good. Its claim is then missing, and the tick is due once more.
        """
        if job.next_run_time is None or job.next_run_time <= now:
            return  # a missed run fires at start anyway (coalesced)
        previous = job.next_run_time - spec.every
        start = getattr(job.trigger, "start_date", None)
        if (start is not None and previous < start) or previous < now - CLAIMS_KEPT:
            return
        if not claimed(self.engine, job.id, previous):
            log.info("tick %s @ %s was never claimed: running it now", job.id, previous)
            self._aps.modify_job(job.id, next_run_time=previous)

    async def _run(self, name: str, scheduled_at: dt.datetime) -> None:
        spec = self._ticks.get(name)
        if spec is None or self._stopping:
            return
        won = await self._claim(name, scheduled_at)
        if won is None:
            return
        if not won:
            log.info("tick %s @ %s already ran on another worker", name, scheduled_at.isoformat())
            return
        await self._execute(spec, scheduled_at)

    async def _execute(self, spec: Job, scheduled_at: dt.datetime) -> None:
        """Run a claimed tick: beat while it runs, then record that it finished and how."""
        name, at = spec.name, scheduled_at.isoformat()
        task = asyncio.current_task()
        self._running.add(task)
        beating = asyncio.create_task(self._beat(name, scheduled_at))
        failure: str | None = None
        again = False  # a tick that failed on the store runs again (nothing lost in an outage)
        try:
            await spec.tick(scheduled_at)
        except asyncio.CancelledError:
            # Left unfinished on purpose: its beats stop, and the next worker runs it again.
            log.warning("tick %s @ %s cancelled at shutdown", name, at)
            raise
        except sa.exc.DBAPIError as exc:
            failure, again = one_line(exc), True
            self.health.failed(failure)
            log.warning("tick %s @ %s failed on the store (%s): it runs again", name, at, failure)
        except Exception as exc:
            failure = one_line(exc)
            log.exception("tick %s @ %s failed", name, at)
        finally:
            beating.cancel()
            self._running.discard(task)
        # Recorded on the side: while the store is away the job's next runs are not held up.
        ending = asyncio.create_task(
            self._store_patiently(
                f"tick {name} @ {at}: cannot record its end",
                heartbeats.finished,
                self.engine,
                name,
                scheduled_at,
                self.worker_id,
                spec.every,
                self.clock(),
                failure,
                again,
            )
        )
        self._rescued.add(ending)
        ending.add_done_callback(self._rescued.discard)

    async def _beat(self, name: str, scheduled_at: dt.datetime) -> None:
        while True:
            await asyncio.sleep(heartbeats.BEAT_EVERY.total_seconds())
            try:
                await asyncio.to_thread(
                    heartbeats.beat, self.engine, name, scheduled_at, self.worker_id, self.clock()
                )
            except sa.exc.SQLAlchemyError as exc:
                log.warning("tick %s: cannot record its heartbeat (%s)", name, one_line(exc))

    async def _store_patiently(self, what: str, fn, *args) -> bool:
        """Call `fn(*args)` in a thread until the store takes it (or the worker stops)."""
        while True:
            try:
                await asyncio.to_thread(fn, *args)
                self.health.answered()
                return True
            except sa.exc.SQLAlchemyError as exc:
                self.health.failed(exc)
                log.warning("%s (%s); trying again in %gs", what, one_line(exc), self.store_retry)
                if self._stopping:
                    return False
                await asyncio.sleep(self.store_retry)

    async def rescue(self) -> int:
        """Run again the ticks whose worker died while running them; returns how many."""
        if self._stopping or not self._ticks:
            return 0
        now = self.clock()
        left = await asyncio.to_thread(heartbeats.abandoned, self.engine, list(self._ticks), now)
        taken = 0
        for name, scheduled_at in left:
            if not await asyncio.to_thread(
                heartbeats.take_over, self.engine, name, scheduled_at, self.worker_id, now
            ):
                continue
            log.info(
                "tick %s @ %s: its worker died while running it; running it again",
                name,
                scheduled_at.isoformat(),
            )
            rerun = asyncio.create_task(self._execute(self._ticks[name], scheduled_at))
            self._rescued.add(rerun)
            rerun.add_done_callback(self._rescued.discard)
            taken += 1
        return taken

    async def _claim(self, name: str, scheduled_at: dt.datetime) -> bool | None:
        """Claim a tick, waiting out a store outage (the tick is not lost); None when stopping."""
        failing = False
        while True:
            try:
                won = await asyncio.to_thread(
                    claim, self.engine, name, scheduled_at, self.worker_id, self.clock()
                )
            except sa.exc.SQLAlchemyError as exc:
                self.health.failed(exc)
                if self._stopping:
                    return None  # never claimed: the next start runs it (_catch_up)
                log.warning(
                    "tick %s @ %s: cannot claim it (%s); trying again in %gs",
                    name,
                    scheduled_at.isoformat(),
                    one_line(exc),
                    self.store_retry,
                )
                failing = True
                await asyncio.sleep(self.store_retry)
                continue
            self.health.answered()
            if failing:
                log.info("tick %s @ %s: claimed after the store came back", name, scheduled_at)
            return won

    async def run_now(self, name: str) -> None:
        """Run one tick of `name` at once (claimed under the current time), e.g. for the CLI."""
        await self._run(name, self.clock())

    def next_runs(self) -> dict[str, dt.datetime | None]:
        """Job name -> next run time (UTC, None when paused), read from the job store table."""
        return stored_next_runs(self.engine)

    async def stop(self, grace: float = 3.0) -> None:
        """Take no new ticks; let running ticks finish for `grace` seconds, then cancel them."""
        self._stopping = True
        if self._aps.running:
            self._aps.pause()
        if self._aps.round is not None and not self._aps.round.done():
            await asyncio.wait([self._aps.round], timeout=grace)  # it may be writing the store
        running = list(self._running)
        if running:
            log.info("waiting up to %.0fs for %d running tick(s)", grace, len(running))
            _done, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._rescued:  # ends of ticks still being recorded (a store outage at the stop)
            _done, late = await asyncio.wait(list(self._rescued), timeout=1.0)
            for task in late:
                task.cancel()  # unfinished in the store: the next worker runs it again
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._aps.running:
            self._aps.shutdown(wait=False)

    def prune_claims(self) -> int:
        """Forget claims older than a week (the table would otherwise grow forever)."""
        cutoff = self.clock() - CLAIMS_KEPT
        with self.engine.begin() as conn:
            result = conn.execute(db.job_claims.delete().where(db.job_claims.c.claimed_at < cutoff))
        return result.rowcount or 0


def stored_next_runs(engine: Engine) -> dict[str, dt.datetime | None]:
    """Read next run times straight from the job store (works whether or not a worker runs)."""
    table = sa.table(JOBS_TABLE, sa.column("id"), sa.column("next_run_time"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table.c.id, table.c.next_run_time)).all()
    except sa.exc.OperationalError:
        return {}  # no schema yet
    return {
        row.id: dt.datetime.fromtimestamp(row.next_run_time, dt.UTC)
        if row.next_run_time is not None
        else None
        for row in rows
    }
