"""`python auth_tool.py`: set up the accounts the worker uses, printing the lines to configure."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from steward.config import EXIT_CONFIG, ConfigError, Settings, load_settings
from steward.farm.auth import EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python auth_tool.py",
        description="Set up accounts: prints the config lines to paste into "
        "`heroku config:set`, or writes them to .env with --env.",
    )
    sub = p.add_subparsers(dest="command", metavar="command", required=True)
    tg = sub.add_parser("telegram", help="check TELEGRAM_TOKEN and find your chat id and user id")
    tg.add_argument("--env", action="store_true", help="write the values to .env")
    tg.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a message")
    x = sub.add_parser("x", help="PIN OAuth for X: get the access token and secret")
    x.add_argument(
        "--reader",
        action="store_true",
        help="authorize the reader account (X_READER_ACCESS_TOKEN/_SECRET)",
    )
    x.add_argument("--env", action="store_true", help="write the values to .env")
    x.add_argument("--bot", metavar="NAME", help="store the tokens for this farm bot, encrypted")
    md = sub.add_parser("mastodon", help="an OAuth app and access token for a Mastodon instance")
    md.add_argument("instance", nargs="?", help="the instance, e.g. mastodon.social")
    md.add_argument("--env", action="store_true", help="write the values to .env")
    md.add_argument("--bot", metavar="NAME", help="store the token for this farm bot, encrypted")
    bs = sub.add_parser("bluesky", help="check a Bluesky app password and print the lines to set")
    bs.add_argument("--env", action="store_true", help="write the values to .env")
    bs.add_argument(
        "--bot", metavar="NAME", help="store the handle and app password for this farm bot"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("PTB_TIMEDELTA", "true")  # see steward/cli.py
    args = parser().parse_args(argv)
    bot = getattr(args, "bot", None)
    if bot and args.env:
        print(
            "--bot stores the tokens in the store, encrypted, not in .env: give one of them.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if bot and getattr(args, "reader", False):
        print(
            "--reader is the worker's reader account, not a farm bot's: give one of them.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    env_file = Path(".env") if args.env else None
    try:
        return _run(args, settings, env_file, bot)
    except EOFError:  # a prompt met a closed stdin (a pipe, `heroku run` without a terminal)
        print(
            "auth_tool: a question got no answer (the input was closed); nothing was changed. "
            "Run it in a terminal.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\nauth_tool: stopped; nothing was changed.", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, settings: Settings, env_file: Path | None, bot) -> int:
    if args.command == "telegram":
        from steward.auth.telegram import discover

        return asyncio.run(discover(settings, wait=args.wait, env_file=env_file))
    store = None
    if bot:
        # Checked before the flow, so nobody authorizes an account for nothing.
        from steward.farm.auth import bot_token_store

        store = bot_token_store(settings, bot)
        if isinstance(store, int):
            return store
    if args.command == "mastodon":
        return _mastodon(args.instance, settings, env_file, store)
    if args.command == "bluesky":
        return _bluesky(settings, env_file, store)
    from steward.auth.x import run_x_auth

    return run_x_auth(settings, reader=args.reader, env_file=env_file, store=store)


def _mastodon(instance: str | None, settings: Settings, env_file: Path | None, store) -> int:
    from steward.auth.fediverse import run_mastodon_auth

    stored = store.stored.get("mastodon_api_url") if store else None
    instance = instance or stored or settings.mastodon_api_url or input("Instance: ")
    return run_mastodon_auth(instance, env_file=env_file, store=store)


def _bluesky(settings: Settings, env_file: Path | None, store) -> int:
    from steward.auth.fediverse import run_bluesky_auth

    if store is not None:
        # A bot's own account: asked for, never the worker's BLUESKY_HANDLE and password.
        api_url = store.stored.get("bluesky_api_url") or settings.bluesky_api_url
        default = store.stored.get("bluesky_handle")
        return run_bluesky_auth(None, None, api_url, store=store, default_handle=default)
    password = settings.bluesky_app_password
    return run_bluesky_auth(
        settings.bluesky_handle,
        password.get_secret_value() if password else None,
        settings.bluesky_api_url,
        env_file=env_file,
    )
