"""APScheduler 3 fitted to the worker: ticks run on the event loop, the job store's rounds run
in a thread and survive store errors, and the job store shares the worker's engine."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from steward.logs import one_line

log = logging.getLogger("steward.scheduler")


class TickExecutor(AsyncIOExecutor):
    """Runs a job as `runner(name, scheduled_at)` on the event loop, with APScheduler's events.

    Jobs are submitted from the store thread (see `StoreScheduler`), so the task is created on
    the loop through `call_soon_threadsafe`.
    """

    def __init__(self, runner: Callable[[str, dt.datetime], Awaitable[None]]) -> None:
        super().__init__()
        self._runner = runner

    def _do_submit_job(self, job, run_times):
        scheduled_at = run_times[-1]  # coalesced: the newest missed time stands for all
        self._eventloop.call_soon_threadsafe(self._start_task, job, scheduled_at)

    def _start_task(self, job, scheduled_at: dt.datetime) -> None:
        def done(future: asyncio.Future) -> None:
            self._pending_futures.discard(future)
            if future.cancelled():
                self._run_job_success(job.id, [])  # frees the instance slot
                return
            if future.exception() is not None:
                exc = future.exception()
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                event = JobExecutionEvent(
                    EVENT_JOB_EXECUTED, job.id, job._jobstore_alias, scheduled_at
                )
                self._run_job_success(job.id, [event])

        future = self._eventloop.create_task(self._runner(job.id, scheduled_at))
        future.add_done_callback(done)
        self._pending_futures.add(future)


class StoreScheduler(AsyncIOScheduler):
    """APScheduler's asyncio scheduler with its job-store work in a thread, surviving errors.

    APScheduler 3 runs `_process_jobs` on the event loop and catches errors only from
    `get_due_jobs`: a failed `update_job` (a connection reset, a failover) leaves `wakeup()`
    before it re-arms its timer, and every job stops for good. Here each round runs in the
    loop's executor (a locked SQLite file or a slow network no longer freezes the loop), one
    round at a time, and a round that fails logs one line and comes back after `store_retry`.
    """

    def __init__(self, *, store_retry: float, **options) -> None:
        super().__init__(jobstore_retry_interval=store_retry, **options)
        self._store_retry = store_retry
        self._processing = False
        self._again = False
        self._failing = False
        self.round: asyncio.Future | None = None  # the round in the store thread, if any

    def wakeup(self) -> None:  # called from any thread
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._stop_timer()
        if self.state == STATE_STOPPED:
            return
        if self._processing:
            self._again = True  # a job changed during the round: look again right after it
            return
        self._processing = True
        self.round = self._eventloop.run_in_executor(None, self._process_or_retry)
        self.round.add_done_callback(self._processed)

    def _process_or_retry(self) -> float | None:
        try:
            wait = self._process_jobs()
            for store in self._jobstores.values():
                if (error := getattr(store, "error", None)) is not None:
                    raise error
        except Exception as exc:
            log.warning(
                "scheduler: the job store failed (%s); trying again in %gs",
                one_line(exc),
                self._store_retry,
            )
            self._failing = True
            return self._store_retry
        if self._failing:
            self._failing = False
            log.info("scheduler: the job store answers again; ticks resume")
        return wait

    def _processed(self, future: asyncio.Future) -> None:
        self._processing = False
        if self.state == STATE_STOPPED or self._eventloop is None:
            return
        if self._again:
            self._again = False
            self._wake()
            return
        failed = future.cancelled() or future.exception() is not None
        self._start_timer(self._store_retry if failed else future.result())


class SharedEngineJobStore(SQLAlchemyJobStore):
    """APScheduler's job store on the worker's engine, which outlives the scheduler.

    The stock store disposes its engine at shutdown; here that engine is shared with the outbox
    and the features, and disposing it under them would orphan the connections they hold.
    """

    error: Exception | None = None  # why the last look for due jobs failed, if it did

    def get_due_jobs(self, now):
        # APScheduler logs and swallows an error here (and only here); the scheduler's round
        # should see it, to log one line of its own and to know when the store answers again.
        try:
            due = super().get_due_jobs(now)
        except Exception as exc:
            self.error = exc
            return []
        self.error = None
        return due

    def shutdown(self) -> None:
        pass  # the worker disposes the engine last (World.stop)
