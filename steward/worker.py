"""The worker's lifecycle: build everything once, start it, run until a signal, stop cleanly.

`build_worker(settings, clock=...)` is the one factory: store, outbox, scheduler, bot and
features. Tests call the same factory. `steward.process.serve` runs it until a signal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from steward import __version__, db, executors, heartbeats
from steward.config import ConfigError, Settings
from steward.features import Clock, Command, Feature, Job, Services
from steward.logs import RedactingFormatter, one_line
from steward.process import serve
from steward.scheduler import Scheduler
from steward.store_health import StoreHealth, worker_name
from steward.telegram.formatting import esc
from steward.telegram.outbox import Outbox
from steward.timeutil import human

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from telegram.ext import Application

    from steward.telegram.sender import OutboxSender

log = logging.getLogger("steward.worker")

# Each feature folder's job.py has `build_feature(services) -> Feature`.
FEATURE_MODULES = (
    "steward.posting.job",
    "steward.training.job",
    "steward.monitoring.job",
    "steward.farm.job",
)
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)
DIALOG_SWEEP_EVERY = dt.timedelta(seconds=15)
WATCHDOG = "steward.watchdog"
LOG_CHAT = "log"  # where notifications go without TELEGRAM_TOKEN and TELEGRAM_CHAT_ID
STARTUP_ATTEMPTS = 10  # getMe tries before giving up (about 4 minutes in all)
STARTUP_BACKOFF = (1.0, 30.0)  # seconds: first wait, longest wait
EXIT_UNAVAILABLE = 69  # sysexits' EX_UNAVAILABLE: Heroku restarts the dyno later


class StartupError(Exception):
    """The worker cannot start; `str()` is the line to print, `status` the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class World:
    settings: Settings
    services: Services
    scheduler: Scheduler
    features: list[Feature]
    commands: list[Command]
    started_at: dt.datetime
    demo: bool = False
    app: Application | None = None  # when TELEGRAM_TOKEN is set
    sender: OutboxSender | None = None
    mode: str = "log only (no TELEGRAM_TOKEN)"
    _stopping: bool = field(default=False, repr=False)
    _stopped_at: float | None = field(default=None, repr=False)  # monotonic, once stopped
    _demo_stop: threading.Event | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def outbox(self) -> Outbox:
        return self.services.outbox

    @property
    def health(self) -> StoreHealth:
        assert self.services.store_health is not None
        return self.services.store_health

    async def start(self) -> None:
        # Store calls and name lookups on separate threads (steward/executors.py).
        executors.install(asyncio.get_running_loop())
        await asyncio.to_thread(self.migrate)
        await self._start_bot()
        await self.sender.start()
        for feature in self.features:
            if feature.enabled and feature.start is not None:
                await feature.start()
        for feature in self.features:
            for job in feature.jobs if feature.enabled else ():
                if self.demo:
                    from steward.demo import cadence

                    job = Job(job.name, cadence(job.name, job.every), job.tick)
                self.scheduler.add(job)
        self.scheduler.add(Job("steward.housekeeping", HOUSEKEEPING_EVERY, self._housekeeping))
        self.scheduler.add(Job("dialogs.timeouts", DIALOG_SWEEP_EVERY, self._expire_dialogs))
        self.scheduler.add(Job(WATCHDOG, heartbeats.WATCH_EVERY, self._watch))
        await asyncio.to_thread(self._seen)
        await self.scheduler.start()
        await self.scheduler.rescue()
        for line in summary_lines(self):
            log.info("%s", line)
        if self.demo:
            self._start_demo_run()

    def _start_demo_run(self) -> None:
        from steward.demo import simulate_training

        self._demo_stop = threading.Event()
        threading.Thread(
            target=simulate_training,
            args=(self.settings.database, self._demo_stop),
            name="demo-training",
            daemon=True,
        ).start()
        log.info("demo: a simulated training run starts now; checks flap at 20-50 s")

    def migrate(self) -> None:
        """Upgrade a SQLite store; refuse to run on a Postgres schema the release phase missed."""
        current, head = db.current_revision(self.engine), db.head_revision()
        if current == head:
            return
        if self.engine.dialect.name == "sqlite":
            log.info("upgrading the SQLite store from %s to %s", current or "empty", head)
            db.upgrade(self.engine)
            return
        raise StartupError(
            f"the database schema is at {current or 'nothing'}, the code needs {head}: "
            "run `python bot.py migrate` (Heroku's release phase does this on deploy)",
            78,
        )

    async def _start_bot(self) -> None:
        if self.app is None:
            self.sender = make_sender(self, bot=None)
            if not self.settings.telegram_token:
                log.info("no TELEGRAM_TOKEN: notifications are printed to this log")
            return
        from steward.telegram import app as tg

        api = self.settings.telegram_api_url
        await with_bot_api_retries(self.app.initialize, api)
        tg.add_commands(self.app, self.commands)
        await tg.publish_commands(self.app, self.commands, self.app.bot_data["access"])
        self.mode = await with_bot_api_retries(
            lambda: tg.start_receiving(self.app, self.settings), api
        )
        await self.app.start()
        self.sender = make_sender(self, bot=self.app.bot)
        self.health.attach(self.app.bot, owner_chats(self.settings), self.outbox)
        log.info("bot @%s is up (%s)", self.app.bot.username, self.mode)

    async def _housekeeping(self, _scheduled: dt.datetime) -> None:
        claims = await asyncio.to_thread(self.scheduler.prune_claims)
        messages = await asyncio.to_thread(self.outbox.prune)
        if claims or messages:
            log.info("housekeeping: forgot %d old tick claims, %d old messages", claims, messages)

    def _seen(self) -> None:
        now = self.services.clock()
        heartbeats.seen(self.engine, self.scheduler.worker_id, self.started_at, now)

    async def _watch(self, _scheduled: dt.datetime) -> None:
        """The worker watching itself: alive, no tick left behind, the owner told of a late job."""
        await asyncio.to_thread(self._seen)
        await self.scheduler.rescue()
        await asyncio.to_thread(self._tell_late)

    def _tell_late(self) -> None:
        now = self.services.clock()
        since = heartbeats.alive_since(self.engine, now)
        for job in heartbeats.health(self.engine, now, since):
            if not job.late or job.job not in self.scheduler.jobs:
                continue
            last = job.last_ok_at.strftime("%Y-%m-%d %H:%M UTC") if job.last_ok_at else "never"
            text = (
                f"⚠️ {esc(job.job)} is late: its last good run was {last}, and it should run every "
                f"{human(job.every)}."
                + (f" Last error: {esc(job.last_failure)}" if job.last_failure else "")
            )
            if heartbeats.tell_late(self.engine, self.outbox, job, text, now):
                log.warning("job %s is late (last good run %s): the owner was told", job.job, last)

    async def _expire_dialogs(self, _scheduled: dt.datetime) -> None:
        await self.services.dialogs.expire()

    async def stop(self, reason: str) -> None:
        """Stop taking work, let what is running finish briefly, flush, and release everything."""
        if self._stopping:
            return
        self._stopping = True
        log.info("stopping (%s)", reason)
        if self._demo_stop is not None:
            self._demo_stop.set()
        if self.app is not None:
            from steward.telegram.app import stop_receiving

            await stop_receiving(self.app)
        await self.scheduler.stop(grace=2.5)
        try:
            await asyncio.to_thread(heartbeats.gone, self.engine, self.scheduler.worker_id)
        except Exception as exc:  # the store may be down at a stop; the row ages out
            log.warning("could not sign this worker off in the store: %s", one_line(exc))
        for feature in self.features:
            if feature.enabled and feature.stop is not None:
                try:
                    await feature.stop()
                except Exception:
                    log.exception("feature %s failed to stop cleanly", feature.name)
        if self.sender is not None:
            await self.sender.stop(timeout=1.5)
        if self.services.store_health is not None:
            await self.services.store_health.aclose()
        if self.app is not None and self.app.running:
            await self.app.stop()
            await self.app.shutdown()
        self.engine.dispose()
        self._stopped_at = time.monotonic()
        log.info("stopped")


async def with_bot_api_retries(step, api_url: str):
    """Run `step()` (a Bot API call at start-up: getMe, deleteWebhook or setWebhook) until the
    Bot API answers: a 5xx, a 429 or a network error at a deploy is waited out (one log line per
    attempt, back-off up to STARTUP_BACKOFF[1]); only a rejected token (401) stops the worker,
    with status 78. SIGTERM meanwhile cancels the wait."""
    from telegram.error import InvalidToken, RetryAfter, TelegramError

    low, high = STARTUP_BACKOFF
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        try:
            return await step()
        except InvalidToken:
            raise StartupError(
                "TELEGRAM_TOKEN was rejected by Telegram (401 Unauthorized); "
                "get a valid token from @BotFather",
                78,
            ) from None
        except TelegramError as exc:
            if attempt == STARTUP_ATTEMPTS:
                raise StartupError(
                    f"the Bot API at {api_url} did not answer after {attempt} attempts: {exc}",
                    EXIT_UNAVAILABLE,
                ) from None
            delay = min(high, low * 2 ** (attempt - 1))
            if isinstance(exc, RetryAfter):
                delay = max(delay, exc.retry_after.total_seconds())
            log.warning(
                "Bot API not ready at %s (attempt %d of %d: %s); retrying in %.0fs",
                api_url,
                attempt,
                STARTUP_ATTEMPTS,
                exc,
                delay,
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


def make_sender(world: World, bot=None) -> OutboxSender:
    """The outbox's one sender: to Telegram through `bot`, or to the log when there is none."""
    from steward.telegram.app import flood_limits
    from steward.telegram.sender import OutboxSender
    from steward.telegram.sinks import LogSink, TelegramSink

    # One flood control for the outbox and direct replies (the bot's rate limiter).
    flood = getattr(getattr(bot, "rate_limiter", None), "flood", None)
    return OutboxSender(
        world.engine,
        TelegramSink(bot) if bot is not None else LogSink(),
        flood_limits(world.settings),
        flood=flood,
        clock=world.services.clock,
        worker_id=world.scheduler.worker_id,
        outbox=world.outbox,
        health=world.services.store_health,
    )


def owner_chats(settings: Settings) -> list[str]:
    """Where the owner hears what goes wrong: TELEGRAM_CHAT_ID, else the allowed users' own
    chats (a private chat's id is the user's id)."""
    if settings.telegram_chat_id:
        return [settings.telegram_chat_id]
    return [str(user) for user in settings.allowed_users if isinstance(user, int)]


def build_worker(
    settings: Settings,
    *,
    clock: Clock = db.utcnow,
    demo: bool = False,
    worker_id: str | None = None,
) -> World:
    """Wire the store, outbox, scheduler, bot and features. Nothing starts until `start()`."""
    from steward.telegram.commands import core_commands
    from steward.telegram.dialog_router import DialogRouter
    from steward.telegram.dialogs import DialogEngine

    engine = db.make_engine(settings.database)
    # Without a token every message goes to the log, so it needs no chat id to go to.
    default_chat = settings.telegram_chat_id or (None if settings.telegram_token else LOG_CHAT)
    outbox = Outbox(engine, default_chat, clock=clock)
    services = Services(settings=settings, engine=engine, outbox=outbox, clock=clock)
    services.dialogs = DialogEngine(
        engine, outbox, clock=clock, default_timeout=settings.dialog_timeout
    )
    worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
    # The dyno's name (Heroku sets DYNO, e.g. worker.1) is what an owner sees on the dashboard.
    services.store_health = StoreHealth(
        worker_name(os.environ, worker_id),
        grace=settings.store_outage_grace,
        redact=RedactingFormatter(settings.secrets()).redact,
        clock=clock,
    )
    scheduler = Scheduler(engine, worker_id=worker_id, clock=clock, health=services.store_health)
    services.next_runs = scheduler.next_runs
    services.demo = demo
    features = [importlib.import_module(m).build_feature(services) for m in FEATURE_MODULES]
    for feature in features:
        for name, fn, version in feature.dialogs if feature.enabled else ():
            services.dialogs.register(name, fn, version=version)
    router = DialogRouter(services.dialogs)
    world = World(settings, services, scheduler, features, [], clock(), demo=demo)
    world.commands = (
        core_commands(world)
        + [router.cancel_command()]
        + [c for f in features if f.enabled for c in f.commands]
    )
    if settings.telegram_token is not None:
        from steward.telegram.access import AccessControl
        from steward.telegram.app import build_application

        access = AccessControl(
            settings.allowed_users, allow_groups=settings.allow_groups, clock=clock, engine=engine
        )
        world.app = build_application(settings, access, router)
        world.app.bot_data["world"] = world
        world.app.bot_data["access"] = access
        if not settings.allowed_users:
            log.warning(
                "ALLOWED_USERS is empty, so the bot refuses everyone: set it to your "
                "numeric Telegram id (`python auth_tool.py telegram` prints it)"
            )
    return world


def summary_lines(world: World) -> list[str]:
    s = world.settings
    lines = [
        f"steward {__version__} ready: store {db.describe(world.engine)}, bot {world.mode}"
        + (", demo mode" if world.demo else ""),
        f"notifications go to {s.telegram_chat_id or 'nobody (set TELEGRAM_CHAT_ID)'}"
        if s.telegram_token
        else "notifications go to this log",
    ]
    for feature in world.features:
        lines.append(f"{feature.name}: {'on' if feature.enabled else 'off'} - {feature.summary}")
    return lines


def run(settings: Settings, *, demo: bool = False) -> int:
    targets = None
    try:
        if demo:
            from steward.demo import DemoTargets, demo_settings

            targets = DemoTargets().start()
            settings = demo_settings(settings, targets)
            log.info("demo: local targets at %s, store %s", targets.url, settings.database)
        world = build_worker(settings, demo=demo)
        return asyncio.run(serve(world))
    except (StartupError, ConfigError) as exc:
        log.error("cannot start: %s", exc)
        return getattr(exc, "status", 78)
    finally:
        if targets is not None:
            targets.stop()
