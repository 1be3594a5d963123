"""What a feature folder hands the worker: its commands, its scheduled jobs and its status.

Each feature (posting, training, monitoring) builds one `Feature` from the settings and the
shared `Services`; the worker registers the commands with the bot and the jobs with the
scheduler. The domain modules of a feature never import Telegram; only its `commands.py` does.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from steward.config import Settings
    from steward.store_health import StoreHealth
    from steward.telegram.dialogs import DialogEngine
    from steward.telegram.outbox import Outbox

# The modules that declare tables on steward.db.metadata (imported by migrations and tests).
STORE_MODULES = (
    "steward.telegram.store",
    "steward.telegram.dialog_store",
    "steward.posting.store",
    "steward.posting.reader",
    "steward.training.store",
    "steward.monitoring.store",
    "steward.farm.store",
)


def import_stores() -> None:
    for name in STORE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


Clock = Callable[[], dt.datetime]


# `/mute <check> <duration>` and `/unmute <check>`: the reply to send (HTML).
CheckMute = Callable[[str, str], Awaitable[str]]
CheckUnmute = Callable[[str], Awaitable[str]]


@dataclass
class Services:
    """The shared world every feature is built from (one per worker process)."""

    settings: Settings
    engine: Engine
    outbox: Outbox
    clock: Clock
    # The dialog engine (steward/telegram/dialogs.py): `await services.dialogs.start(name, ...)`.
    dialogs: DialogEngine | None = None
    # Filled in by the worker once the scheduler exists: job name -> next run time (UTC) or None.
    next_runs: Callable[[], dict[str, dt.datetime | None]] = lambda: {}
    demo: bool = False
    # Set by monitoring when it is on: the bot's /mute and /unmute pass a check's name here.
    mute_check: CheckMute | None = None
    unmute_check: CheckUnmute | None = None
    # Where store failures and answers are reported (the owner hears of an outage once).
    store_health: StoreHealth | None = None


# A command callback is a python-telegram-bot callback: `async def cb(update, context)`.
CommandCallback = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Command:
    name: str  # without the slash, lowercase, as setMyCommands wants it
    description: str  # one line for /help and the command menu
    callback: CommandCallback
    # Button presses whose callback_data starts with "<name>:" go to this callback, if set.
    on_button: CommandCallback | None = None


@dataclass(frozen=True)
class Job:
    name: str  # stable id in the persistent job store, e.g. "posting.tick"
    every: dt.timedelta
    # Runs one tick; receives the tick's scheduled time (UTC). Only runs after the tick is claimed.
    tick: Callable[[dt.datetime], Awaitable[None]]


@dataclass
class Feature:
    name: str
    enabled: bool
    # Why the feature is off, or a one-line summary of what it does when on.
    summary: str
    commands: list[Command] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    # Dialogs this feature's commands start: (name, async def fn(d), version).
    dialogs: list[tuple[str, Callable[[Any], Awaitable[Any]], int]] = field(default_factory=list)
    # Called once at start (after migrations, before the first tick) and at stop.
    start: Callable[[], Awaitable[None]] | None = None
    stop: Callable[[], Awaitable[None]] | None = None
    # Lines for /status and the start-up summary.
    status: Callable[[], list[str]] = lambda: []
    # Why the feature cannot do its job right now (one line), or None when it can: /status marks
    # the feature ⚠️ instead of ✅ while it lasts.
    problem: Callable[[], str | None] = lambda: None
