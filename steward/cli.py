"""Command line: `python bot.py [--demo] [worker|config|migrate|post|check|status|bots]`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from steward import __version__, logs
from steward.config import EXIT_CONFIG, ConfigError, Settings, load_settings, variables

log = logging.getLogger("steward.cli")
EXIT_UNAVAILABLE = 69  # sysexits' EX_UNAVAILABLE: a service the command needs is not there


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python bot.py",
        description="steward: a 12-factor bot worker. Configured by environment variables "
        "(or a .env file); `python bot.py config` shows what it sees.",
    )
    p.add_argument("--version", action="version", version=f"steward {__version__}")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run every feature at a fast cadence against built-in local targets",
    )
    sub = p.add_subparsers(dest="command", metavar="command")
    sub.add_parser("worker", help="run the worker until SIGTERM (the default)")
    sub.add_parser("config", help="print the effective configuration, secrets redacted")
    sub.add_parser("migrate", help="upgrade the database schema (Heroku's release phase)")
    post = sub.add_parser("post", help="run one posting tick now (for cron/Heroku Scheduler)")
    post.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the next tick would post, publish nothing",
    )
    sub.add_parser("check", help="run every monitoring check once and print a table")
    sub.add_parser("status", help="print what the worker is doing, from the store")
    from steward.farm.cli import add_parser as add_bots_parser

    add_bots_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # python-telegram-bot 22 moves durations (e.g. RetryAfter.retry_after) to timedelta and
    # warns on every use of the old float form; opt in to the new form before it is imported.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    logs.setup(settings.log_level, settings.secrets())
    command = args.command or "worker"
    try:
        return COMMANDS[command](settings, args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    except OperationalError as exc:
        # Down, unreachable, or refusing the login: one line (through the redacting log), no
        # traceback. Heroku restarts the dyno; the line says what to look at.
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        log.error("cannot use the database %s: %s", _database_shown(settings), reason)
        return EXIT_UNAVAILABLE


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from steward import worker

    return worker.run(settings, demo=args.demo)


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    from steward import worker
    from steward.monitoring.redact import redact

    for name, doc in variables().items():
        value = getattr(settings, doc["field"])
        if doc["secret"]:
            shown = "(not set)" if value is None else "*** (set)"
            if name == "DATABASE_URL":
                shown = _database_shown(settings)
        elif value is None or value == ():
            shown = "(not set)"
        elif isinstance(value, tuple):
            shown = ", ".join(str(v) for v in value)
        else:
            shown = redact(str(value))  # CHECKS' URLs may hold passwords and API keys
        print(f"{name:24} {shown}")
    print()
    try:
        world = worker.build_worker(settings, demo=args.demo)
    except ConfigError as exc:
        # The table above is what the worker sees; this line is why it would not start.
        print(f"config error: {exc}", flush=True)
        return EXIT_CONFIG
    print(f"telegram: {'on' if settings.telegram_token else 'off - set TELEGRAM_TOKEN'}")
    for feature in world.features:
        print(f"{feature.name}: {'on' if feature.enabled else 'off'} - {feature.summary}")
    world.engine.dispose()
    return 0


def _database_shown(settings: Settings) -> str:
    from steward import db

    return db.normalize_url(settings.database).render_as_string(hide_password=True)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from steward import db

    engine = db.make_engine(settings.database)
    before = db.current_revision(engine)
    db.upgrade(engine)
    after = db.current_revision(engine)
    log.info("schema of %s: %s -> %s", db.describe(engine), before or "empty", after)
    engine.dispose()
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from steward import status, worker
    from steward.telegram.commands import render_status
    from steward.telegram.formatting import strip_html

    world = worker.build_worker(settings)
    try:
        world.migrate()
    except worker.StartupError as exc:
        print(f"cannot read the store: {exc}", file=sys.stderr)
        return exc.status
    report = status.gather(world)
    report = dataclasses.replace(report, uptime=None, bot="not running here")
    print(strip_html(render_status(report, settings.tz)))
    world.engine.dispose()
    return 0


def cmd_post(settings: Settings, args: argparse.Namespace) -> int:
    from steward.posting.cli import run_post

    return run_post(settings, dry_run=args.dry_run)


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    from steward.monitoring.cli import run_check

    return run_check(settings)


def cmd_bots(settings: Settings, args: argparse.Namespace) -> int:
    from steward.farm.cli import run

    return run(settings, args)


COMMANDS = {
    "worker": cmd_worker,
    "config": cmd_config,
    "migrate": cmd_migrate,
    "post": cmd_post,
    "check": cmd_check,
    "status": cmd_status,
    "bots": cmd_bots,
}
