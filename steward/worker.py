"""The worker's lifecycle: build everything once, start it, run until a signal, stop cleanly.

`build_worker(settings, clock=...)` is the one factory: store, outbox, scheduler, bot and
features. Tests call the same factory. SIGTERM or SIGINT means "finish what you hold and go"
(well inside Heroku's 30-second grace); a second signal means "go now".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import os
import signal
import socket
from dataclasses import dataclass, field

from steward import __version__, db
from steward.config import ConfigError, Settings
from steward.features import Clock, Command, Feature, Job, Services
from steward.scheduler import Scheduler
from steward.telegram.outbox import Outbox

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
LOG_CHAT = "log"  # where notifications go without TELEGRAM_TOKEN and TELEGRAM_CHAT_ID


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
    app: object | None = None  # telegram.ext.Application when TELEGRAM_TOKEN is set
    sender: object | None = None
    mode: str = "log only (no TELEGRAM_TOKEN)"
    _stopping: bool = field(default=False, repr=False)
    _demo_stop: object | None = field(default=None, repr=False)

    @property
    def engine(self):
        return self.services.engine

    @property
    def outbox(self) -> Outbox:
        return self.services.outbox

    async def start(self) -> None:
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
        await self.scheduler.start()
        for line in summary_lines(self):
            log.info("%s", line)
        if self.demo:
            self._start_demo_run()

    def _start_demo_run(self) -> None:
        import threading

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
        from telegram.error import InvalidToken, NetworkError

        from steward.telegram import app as tg

        try:
            await self.app.initialize()
        except InvalidToken:
            raise StartupError(
                "TELEGRAM_TOKEN was rejected by Telegram (401 Unauthorized); "
                "get a valid token from @BotFather",
                78,
            ) from None
        except NetworkError as exc:
            raise StartupError(
                f"cannot reach the Bot API at {self.settings.telegram_api_url}: {exc}"
            ) from None
        tg.add_commands(self.app, self.commands)
        await tg.publish_commands(self.app, self.commands)
        self.mode = await tg.start_receiving(self.app, self.settings)
        await self.app.start()
        self.sender = make_sender(self, bot=self.app.bot)
        log.info("bot @%s is up (%s)", self.app.bot.username, self.mode)

    async def _housekeeping(self, _scheduled: dt.datetime) -> None:
        claims = await asyncio.to_thread(self.scheduler.prune_claims)
        messages = await asyncio.to_thread(self.outbox.prune)
        if claims or messages:
            log.info("housekeeping: forgot %d old tick claims, %d old messages", claims, messages)

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
        if self.app is not None and self.app.updater.running:
            await self.app.updater.stop()
        await self.scheduler.stop(grace=2.5)
        for feature in self.features:
            if feature.enabled and feature.stop is not None:
                try:
                    await feature.stop()
                except Exception:
                    log.exception("feature %s failed to stop cleanly", feature.name)
        if self.sender is not None:
            await self.sender.stop(timeout=1.5)
        if self.app is not None and self.app.running:
            await self.app.stop()
            await self.app.shutdown()
        self.engine.dispose()
        log.info("stopped")


def make_sender(world: World, bot=None):
    """The outbox's one sender: to Telegram through `bot`, or to the log when there is none."""
    from steward.telegram.flood import FloodLimits
    from steward.telegram.sender import OutboxSender
    from steward.telegram.sinks import LogSink, TelegramSink

    s = world.settings
    limits = FloodLimits(
        per_chat_per_second=s.telegram_rate_per_chat,
        group_per_minute=s.telegram_rate_per_group,
        global_per_second=s.telegram_rate_global,
    )
    return OutboxSender(
        world.engine,
        TelegramSink(bot) if bot is not None else LogSink(),
        limits,
        clock=world.services.clock,
        worker_id=world.scheduler.worker_id,
        outbox=world.outbox,
    )


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
    scheduler = Scheduler(engine, worker_id=worker_id, clock=clock)
    services.next_runs = scheduler.next_runs
    services.extra["demo"] = demo
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
            settings.allowed_users, allow_groups=settings.allow_groups, clock=clock
        )
        world.app = build_application(settings, access, router)
        world.app.bot_data["world"] = world
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


async def serve(world: World) -> int:
    """Run until SIGTERM/SIGINT; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        if len(received) > 1:
            log.warning("second %s: exiting now", sig.name)
            os._exit(1)
        log.info("received %s: finishing what is in hand", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await world.start()
    except BaseException:
        await world.stop("start-up failed")
        raise
    await stop.wait()
    await world.stop(received[0] if received else "stop requested")
    return 0


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
