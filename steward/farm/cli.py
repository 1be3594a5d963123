"""`python bot.py bots ...`: add, edit, list, show, pause, resume, remove, export, import bots."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from steward.config import Settings
from steward.farm import bots as farm_bots
from steward.farm import secrets, transfer
from steward.farm.bots import Bot, BotError
from steward.farm.render import stats_lines, table_rows

EXIT_USAGE = 64  # sysexits' EX_USAGE: bad input on the command line


def add_parser(sub) -> None:
    p = sub.add_parser("bots", help="manage the farm's posting bots (add, list, show, ...)")
    cmd = p.add_subparsers(dest="bots_command", metavar="action", required=True)
    add = cmd.add_parser("add", help="add a bot")
    add.add_argument("name")
    add.add_argument("--template", required=True, help="printf %%s, {word} slots or Tracery")
    add.add_argument("--interval", type=int, default=60, help="minutes between ticks")
    add.add_argument("--per-tick", type=int, default=1, help="posts per tick")
    source = add.add_mutually_exclusive_group()
    source.add_argument("--words", help="its own words, separated by commas")
    source.add_argument("--feed", help="an RSS/Atom feed whose words it uses")
    add.add_argument("--to", default="dry-run", help="x,telegram:@chan,mastodon,bluesky")
    add.add_argument("--monthly-limit", type=int, default=0, help="most X posts a month")
    edit = cmd.add_parser("edit", help="change a bot's settings (its posts and cursor stay)")
    edit.add_argument("name")
    edit.add_argument("--template", help="printf %%s, {word} slots or Tracery")
    edit.add_argument("--interval", type=int, help="minutes between ticks")
    edit.add_argument("--per-tick", type=int, help="posts per tick")
    source = edit.add_mutually_exclusive_group()
    source.add_argument("--words", help="its own words, separated by commas")
    source.add_argument("--feed", help="an RSS/Atom feed whose words it uses")
    source.add_argument("--reader", action="store_true", help="the shared reader's timeline")
    edit.add_argument("--to", help="x,telegram:@chan,mastodon,bluesky")
    edit.add_argument("--monthly-limit", type=int, help="most X posts a month, 0 for no cap")
    cmd.add_parser("list", help="every bot, one line each")
    for action, text in (
        ("show", "a bot's settings and stats"),
        ("pause", "stop a bot's ticks"),
        ("resume", "start a paused bot's ticks again"),
        ("remove", "delete a bot and its tokens (its posts stay)"),
    ):
        cmd.add_parser(action, help=text).add_argument("name")
    exp = cmd.add_parser("export", help="print every bot as JSON")
    exp.add_argument("--with-secrets", action="store_true", help="include tokens, in plain text")
    imp = cmd.add_parser("import", help="add or replace bots from an export file ('-': stdin)")
    imp.add_argument("file")
    cmd.add_parser("rekey", help="re-encrypt stored tokens with STEWARD_SECRET_KEY's first key")
    secret = cmd.add_parser(
        "secret", help="store one token for a bot, read from the terminal or stdin (never argv)"
    )
    secret.add_argument("name")
    secret.add_argument("key", choices=secrets.NAMES)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from steward import db

    engine = db.make_engine(settings.database)
    try:
        ensure_migrated(engine)
        return ACTIONS[args.bots_command](engine, settings, args)
    except (BotError, secrets.SecretError) as exc:
        print(f"bots {args.bots_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()


def ensure_migrated(engine) -> None:
    """A SQLite store is brought up to date here; another store is `python bot.py migrate`'s."""
    from steward import db

    if db.current_revision(engine) != db.head_revision():
        if engine.dialect.name != "sqlite":
            raise BotError("the store is not up to date: run `python bot.py migrate` first")
        db.upgrade(engine)


def _add(engine, settings, args) -> int:
    from steward.db import utcnow

    bot = Bot(
        args.name,
        args.template,
        args.interval,
        args.per_tick,
        args.words,
        args.feed,
        farm_bots.parse_targets(args.to),
        args.monthly_limit,
    )
    with engine.begin() as conn:
        farm_bots.add(conn, bot, utcnow())
    print(
        f"added {bot.name}: {bot.per_tick} post(s) every {bot.interval_min} min to "
        f"{', '.join(bot.targets)}"
    )
    _next_steps(bot.name, {t.split(":")[0] for t in bot.targets})
    return 0


def _next_steps(name: str, networks: set[str]) -> None:
    """What to run so that the bot can post to these networks: their tokens."""
    if "x" in networks:
        print(f"next: python auth_tool.py x --bot {name}  (stores its tokens, encrypted)")
    for network in sorted(networks & set(ACCOUNT_SECRETS)):
        print(f"next: python auth_tool.py {network} --bot {name}  (stores its account, encrypted)")
        for key in ACCOUNT_SECRETS[network]:
            print(f"  or by hand: python bot.py bots secret {name} {key}")


EDITABLE = ("template", "interval", "per_tick", "words", "feed", "reader", "to", "monthly_limit")


def _edit(engine, settings, args) -> int:
    from steward.db import utcnow
    from steward.farm import leases
    from steward.timeutil import local

    given = {k: v for k in EDITABLE if (v := getattr(args, k)) is not None and v is not False}
    if not given:
        options = ", ".join(f"--{k.replace('_', '-')}" for k in EDITABLE)
        raise BotError(f"nothing to change: give one or more of {options}")
    changes = {
        field: given[option]
        for option, field in (
            ("template", "template"),
            ("interval", "interval_min"),
            ("per_tick", "per_tick"),
            ("monthly_limit", "monthly_limit"),
        )
        if option in given
    }
    if "to" in given:
        changes["targets"] = farm_bots.parse_targets(given["to"])
    if {"words", "feed", "reader"} & set(given):
        changes["words"], changes["feed_url"] = given.get("words"), given.get("feed")
    with engine.begin() as conn:
        before = farm_bots.get(conn, args.name)
        lines = farm_bots.edit(conn, args.name, changes, utcnow())
        due = leases.due_at(conn, farm_bots.UNIT_KIND, args.name)
    if not lines:
        print(f"{args.name}: nothing changed")
        return 0
    print(f"edited {args.name}:")
    for line in lines:
        print(f"  {line}")
    moved = changes.get("interval_min", before.interval_min) != before.interval_min
    if moved and due is not None and not before.paused:
        print(f"  next tick: {local(due, settings.tz)}")
    if "targets" in changes:
        _next_steps(
            args.name,
            {t.split(":")[0] for t in changes["targets"]}
            - {t.split(":")[0] for t in before.targets},
        )
    return 0


def _list(engine, settings, args) -> int:
    from steward.db import utcnow

    with engine.connect() as conn:
        rows = [farm_bots.stats(conn, b.name, utcnow()) for b in farm_bots.all_bots(conn)]
    for line in table_rows(rows, settings.tz, main=_main_line(settings)):
        print(line)
    return 0


def _main_line(settings: Settings) -> str:
    where = "X" if settings.x_credentials else "dry-run"
    return f"main: the bot from the environment, every {settings.post_interval} min to {where}"


def _show(engine, settings, args) -> int:
    from steward.db import utcnow

    with engine.connect() as conn:
        found = farm_bots.stats(conn, args.name, utcnow())
    print("\n".join(stats_lines(found, settings.tz)))
    return 0


def _pause(engine, settings, args, paused: bool = True) -> int:
    from steward.db import utcnow

    with engine.begin() as conn:
        changed = farm_bots.set_paused(conn, args.name, paused, utcnow())
    state = "paused" if paused else "running"
    print(f"{args.name} {'is now' if changed else 'was already'} {state}")
    return 0


def _remove(engine, settings, args) -> int:
    with engine.begin() as conn:
        farm_bots.remove(conn, args.name)
    print(f"removed {args.name} and its tokens; its posts stay in the store")
    return 0


def _export(engine, settings, args) -> int:
    vault = secrets.Vault.from_settings(settings)
    with engine.connect() as conn:
        data = transfer.export(conn, vault, with_secrets=args.with_secrets)
    print(json.dumps(data, indent=2, ensure_ascii=False))
    return 0


def _import(engine, settings, args) -> int:
    from steward.db import utcnow

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8")
    except OSError as exc:
        raise BotError(f"cannot read {args.file}: {exc.strerror}") from None
    vault = secrets.Vault.from_settings(settings)
    with engine.begin() as conn:
        count, stored = transfer.load(conn, vault, text, utcnow())
    print(f"imported {count} bot(s) and {stored} token(s)")
    return 0


def _rekey(engine, settings, args) -> int:
    vault = secrets.Vault.from_settings(settings)
    with engine.begin() as conn:
        count = secrets.rekey(conn, vault)
    print(f"re-encrypted {count} token(s) with the first key of STEWARD_SECRET_KEY")
    return 0


def _secret(engine, settings, args) -> int:
    import getpass

    from steward.db import utcnow

    vault = secrets.Vault.from_settings(settings)
    if not vault.ready:
        raise secrets.SecretError(secrets.NO_KEY)
    with engine.connect() as conn:
        farm_bots.get(conn, args.name)
    prompt = f"{args.key} for {args.name} (not shown): "
    value = (getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline()).strip()
    if not value:
        raise BotError("no value given; nothing was stored")
    with engine.begin() as conn:
        secrets.put(conn, vault, args.name, {args.key: value}, utcnow())
    print(f"stored {args.key} for {args.name}, encrypted")
    return 0


# What `bots add` asks for next per network (the API URLs fall back to the worker's settings).
ACCOUNT_SECRETS = {
    "mastodon": ("mastodon_access_token", "mastodon_api_url"),
    "bluesky": ("bluesky_handle", "bluesky_app_password"),
}

ACTIONS = {
    "add": _add,
    "edit": _edit,
    "list": _list,
    "show": _show,
    "pause": _pause,
    "resume": lambda e, s, a: _pause(e, s, a, paused=False),
    "remove": _remove,
    "export": _export,
    "import": _import,
    "rekey": _rekey,
    "secret": _secret,
}
