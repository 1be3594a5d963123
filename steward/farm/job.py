"""The farm's work in every worker process: claim due units (bot ticks, the reader's read) from
the store and run them, so `ps:scale worker=N` adds capacity rather than standbys.

Not an APScheduler job: a scheduled job runs on one worker per tick by design (job_claims),
while farm units are shared out by leases (see leases.py). Each process polls for due units,
runs up to CONCURRENCY at once in threads (the work is I/O: X, feeds, the store), renews the
leases of what it holds, and gives back what it holds when it stops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import sqlalchemy as sa

from steward import logs
from steward.farm import bots as farm_bots
from steward.farm import leases, secrets
from steward.farm import reader as farm_reader
from steward.farm.bots import UNIT_KIND as BOT
from steward.farm.posting_adapter import TickError, build_poster, publishers_key, run_tick
from steward.features import Feature, Services
from steward.posting import reader
from steward.telegram.formatting import esc

if TYPE_CHECKING:
    from steward.posting.poster import Poster

log = logging.getLogger("steward.farm")

LEASE = dt.timedelta(seconds=60)
POLL = 1.0  # seconds between looks for due units when idle
DEMO_BOTS = (
    ("haiku", "{Word} in the {place}, {time} light.", "moss,rain,frost,heron,lantern"),
    ("newsy", "Breaking: %s meets %s.", "comet,teapot,senate,otter,violin"),
)
CONCURRENCY = 6  # units at once per process; the store's pool (10) is shared with the rest


class Farm:
    def __init__(
        self, services: Services, *, lease: dt.timedelta = LEASE, concurrency: int = CONCURRENCY
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.engine = services.engine
        self.outbox = services.outbox
        self.clock = services.clock
        self.lease = lease
        self.concurrency = concurrency
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.vault = secrets.Vault.from_settings(self.settings)
        self.reader_client = self._reader_client()
        self.held: dict[tuple[str, str], leases.Unit] = {}  # what this process holds leases on
        self._lock = threading.Lock()
        self.done = 0
        self._task: asyncio.Task | None = None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="farm")
        # What each kind of unit does; another kind (a check's sample, a run's watch) is one
        # more entry here, claimed and leased the same way.
        self.handlers = {BOT: self._bot_tick, reader.UNIT_KIND: self._read}
        # Per bot: (its spec-and-tokens key, its Poster), kept between ticks.
        self._posters: dict[str, tuple[str, Poster]] = {}

    def _reader_client(self):
        from steward.config import ConfigError
        from steward.posting.wiring import reader_client

        try:
            return reader_client(self.settings)
        except ConfigError:  # half-set tokens: posting stops the worker with that sentence
            return None

    @property
    def reader_every(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.settings.post_interval)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.ensure_reader)
        # Main's first tick may run as soon as the scheduler starts (after every feature's
        # start): a due read comes first, so that tick has the timeline's words.
        await asyncio.to_thread(self.read_if_due)
        if self.services.demo:
            await asyncio.to_thread(self._demo_bots)
        self._task = asyncio.create_task(self._loop(), name="farm")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _key, poster in list(self._posters.values()):
            poster.stopping.set()  # a back-off wait before a retry ends now; the post waits
        await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)
        for unit in self._held_now():
            await asyncio.to_thread(leases.release, self.engine, unit)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        health = self.services.store_health  # told of outages, so that the owner hears of one
        running: set[asyncio.Future] = set()
        renewed = loop.time()
        failing = False
        while True:
            claimed: list[leases.Unit] = []
            running = {f for f in running if not f.done()}
            try:
                free = self.concurrency - len(running)
                claimed = await asyncio.to_thread(
                    leases.claim, self.engine, self.owner,
                    now=self.clock(), lease=self.lease, limit=free, kinds=list(self.handlers),
                )  # fmt: skip
                for unit in claimed:
                    self._hold(unit)
                    running.add(loop.run_in_executor(self._pool, self.run_unit, unit))
                if loop.time() - renewed > self.lease.total_seconds() / 3 and self.held:
                    held = self._held_now()
                    await asyncio.to_thread(
                        leases.extend, self.engine, held, now=self.clock(), lease=self.lease
                    )
                    renewed = loop.time()
                if health is not None:
                    health.answered()
                if failing:
                    log.info("farm: the store answers again")
                failing = False
            except Exception as exc:
                if not failing:  # once per outage, not once a second
                    log.error("farm: cannot claim work from the store (%s); retrying", exc)
                failing = True
                if health is not None and isinstance(exc, sa.exc.SQLAlchemyError):
                    health.failed(exc)
            if running and not claimed:
                _, running = await asyncio.wait(
                    running, timeout=POLL, return_when="FIRST_COMPLETED"
                )
            elif not claimed:
                await asyncio.sleep(POLL)

    def _held_now(self) -> list[leases.Unit]:
        with self._lock:
            return list(self.held.values())

    def _hold(self, unit: leases.Unit) -> None:
        with self._lock:
            self.held[(unit.kind, unit.key)] = unit

    def run_due(self) -> int:
        """Claim and run every due unit here, one after another (tests; a cron-style run)."""
        count = 0
        while units := leases.claim(
            self.engine, self.owner, now=self.clock(), lease=self.lease, limit=self.concurrency,
            kinds=list(self.handlers),
        ):  # fmt: skip
            for unit in sorted(units, key=lambda u: u.kind != reader.UNIT_KIND):
                self._hold(unit)
                self.run_unit(unit)
                count += 1
        return count

    def _demo_bots(self) -> None:
        """`--demo`: two dry-run bots posting every minute, so /bots and /farm have rows."""
        with self.engine.begin() as conn:
            if farm_bots.all_bots(conn):
                return
            for name, template, words in DEMO_BOTS:
                bot = farm_bots.Bot(name, template, interval_min=1, words=words)
                farm_bots.add(conn, bot, self.clock())

    def read_if_due(self) -> None:
        units = leases.claim(
            self.engine, self.owner, now=self.clock(), lease=self.lease, limit=1,
            kinds=[reader.UNIT_KIND], keys=[reader.UNIT_KEY],
        )  # fmt: skip
        for unit in units:
            self._hold(unit)
            self.run_unit(unit)

    def ensure_reader(self) -> None:
        """The reader's unit exists whenever its account is set, bots or not: main reads too."""
        if self.reader_client is not None:
            with self.engine.begin() as conn:
                leases.ensure(conn, reader.UNIT_KIND, reader.UNIT_KEY, self.clock())

    # -- one unit (in a worker thread) -----------------------------------------------------

    def run_unit(self, unit: leases.Unit) -> None:
        try:
            self.handlers[unit.kind](unit)
            self.done += 1
        except Exception:
            log.exception("farm: %s %s failed; it goes back to the queue", unit.kind, unit.key)
            leases.release(self.engine, unit)
        finally:
            with self._lock:
                self.held.pop((unit.kind, unit.key), None)

    def _read(self, unit: leases.Unit) -> None:
        now = self.clock()
        if self.reader_client is None:  # the reader's tokens were unset since
            with self.engine.begin() as conn:
                reader.forget(conn, now)
            return
        # The read, the unit's finish and the owner's message when the reader broke or reads
        # again: posting/reader.py (main is a writer too; the owner hears it once, not per bot).
        reader.run_unit(
            self.engine, self.reader_client, self.outbox, unit,
            grab=self.settings.tweet_grab, every=self.reader_every, now=now,
        )  # fmt: skip
        # /farm's chart has main too: it draws from the reader whenever one is configured, and
        # its tick is the scheduler's, so its point is taken here, once per read.
        with self.engine.begin() as conn:
            stored, unused = farm_bots.word_counts(conn, farm_bots.MAIN)
            farm_reader.sample(conn, farm_bots.MAIN, stored, unused, now)

    def _bot_tick(self, unit: leases.Unit) -> None:
        now = self.clock()
        with self.engine.connect() as conn:
            try:
                bot = farm_bots.get(conn, unit.key)
            except farm_bots.BotError:
                bot = None
            row_error = farm_bots.last_error(conn, unit.key) if bot else None
        if bot is None:  # removed meanwhile
            with self.engine.begin() as conn:
                leases.remove(conn, BOT, unit.key)
            return
        every = dt.timedelta(minutes=bot.interval_min)
        error, told = None, False
        if not bot.paused:
            try:
                error, told = self._post(bot, unit.due_at)
            except Exception as exc:  # a bug must not take the farm down: the owner hears it
                log.exception("farm: bot %s: tick failed", bot.name)
                error = f"the tick failed: {type(exc).__name__}"
        with self.engine.begin() as conn:
            if not leases.finish(
                conn, unit, next_due=leases.next_due(unit.due_at, every, now), now=now
            ):
                log.warning("farm: bot %s: lease lost before the tick finished", bot.name)
                return
            if bot.reads_timeline:  # /farm's chart: the shared timeline's words only
                stored, unused = farm_bots.word_counts(conn, bot.name)
                farm_reader.sample(conn, bot.name, stored, unused, now)
            if error != row_error:
                farm_bots.record_error(conn, bot.name, error, now)
                if not told:  # posting said it already, naming the bot
                    self._announce(conn, bot.name, error, now)
        self.outbox.wake()

    def _post(self, bot: farm_bots.Bot, at: dt.datetime) -> tuple[str | None, bool]:
        """The bot's tick through its Poster: (what went wrong, whether posting told the owner)."""
        try:
            with self.engine.connect() as conn:
                tokens = secrets.get(conn, self.vault, bot.name)
            logs.add_secrets(tokens.values())
            key = publishers_key(bot, tokens)
            kept_key, poster = self._posters.get(bot.name, (None, None))
            if kept_key != key:  # a new spec or new tokens: the old Poster is dropped
                poster = build_poster(
                    bot, tokens, settings=self.settings, engine=self.engine,
                    outbox=self.outbox, clock=self.clock,
                )  # fmt: skip
                self._posters[bot.name] = (key, poster)
            result = run_tick(poster, bot, at)
        except (TickError, secrets.SecretError) as exc:
            log.warning("farm: bot %s: %s", bot.name, exc)
            return str(exc), False
        log.info("farm: bot %s: tick of %s: %d sent", bot.name, at.isoformat(), result.sent)
        return result.error, result.told

    def _announce(self, conn, name: str, error: str | None, now: dt.datetime) -> None:
        if error is None:
            text = f"✅ Bot <b>{esc(name)}</b> posts again."
        else:
            text = f"⚠️ Bot <b>{esc(name)}</b>: {esc(error)}"
        self.outbox.notify_in(conn, text, key=f"farm:{name}:{now.isoformat()}")

    def status_lines(self) -> list[str]:
        with self.engine.connect() as conn:
            found = farm_bots.all_bots(conn)
        running = sum(not b.paused for b in found)
        return [
            f"farm: {len(found)} bot(s), {running} running; this worker did {self.done} unit(s)"
        ]

    def problem(self) -> str | None:
        """Which running bots failed their last tick (/status marks the farm ⚠️ meanwhile)."""
        with self.engine.connect() as conn:
            names = farm_bots.failing(conn)
        if not names:
            return None
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return f"{len(names)} bot(s) failing: {', '.join(names[:5])}{more} (/bots shows why)"


def build_feature(services: Services) -> Feature:
    from steward.farm import commands

    farm = Farm(services)
    reader_line = "one shared reader" if farm.reader_client is not None else "no reader account"
    return Feature(
        "farm",
        True,
        f"bots from the store (python bot.py bots ...), {reader_line}",
        commands=commands.build(farm, services),
        start=farm.start,
        stop=farm.stop,
        status=farm.status_lines,
        problem=farm.problem,
    )
