"""`bots export` and `bots import`: every bot as JSON, its tokens only when asked for.

The file carries what a bot needs to run elsewhere: its spec and, with `--with-secrets`, its
tokens in plain text (the file is then as sensitive as the tokens; the receiving store encrypts
them again under its own STEWARD_SECRET_KEY). Importing a bot that exists replaces its spec.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy.engine import Connection

from steward.farm import bots as farm_bots
from steward.farm import secrets
from steward.farm.bots import Bot, BotError

FORMAT = "steward-farm/1"
_TEXT_OR_NULL = (str, type(None))
TYPES = {
    "name": str,
    "template": str,
    "interval_min": int,
    "per_tick": int,
    "words": _TEXT_OR_NULL,
    "feed_url": _TEXT_OR_NULL,
    "targets": list,
    "monthly_limit": int,
    "paused": bool,
}
DESCRIBED: dict[object, str] = {
    str: "text",
    int: "a whole number",
    list: "a list",
    bool: "true or false",
    _TEXT_OR_NULL: "text or null",
}


def export(conn: Connection, vault: secrets.Vault, *, with_secrets: bool) -> dict[str, Any]:
    out = []
    for bot in farm_bots.all_bots(conn):
        entry = bot.spec()
        if with_secrets:
            entry["secrets"] = secrets.get(conn, vault, bot.name)
        out.append(entry)
    return {"format": FORMAT, "bots": out}


def parse(text: str) -> list[tuple[Bot, dict[str, str]]]:
    """The bots of an export file, checked; BotError names the first problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BotError(f"the file is not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BotError(f"the file is not a `bots export` ({FORMAT}) file")
    fields = set(Bot.__dataclass_fields__)
    found = []
    for i, entry in enumerate(data.get("bots") or [], 1):
        if not isinstance(entry, dict):
            raise BotError(f"bot #{i} in the file is not an object")
        unknown = set(entry) - fields - {"secrets"}
        if unknown:
            raise BotError(f"bot #{i} has unknown fields: {', '.join(sorted(unknown))}")
        try:
            bot = Bot(**{k: v for k, v in entry.items() if k != "secrets"})
        except TypeError:
            raise BotError(f"bot #{i} lacks a name or a template") from None
        for name, kind in TYPES.items():
            value = getattr(bot, name)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise BotError(f"bot #{i}: {name} is not {DESCRIBED[kind]}")
        values = entry.get("secrets") or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise BotError(f"bot #{i}: secrets must map names to text")
        try:
            farm_bots.validate(bot)
        except BotError as exc:
            raise BotError(f"bot {entry.get('name')!r}: {exc}") from None
        found.append((bot, dict(values)))
    return found


def load(conn: Connection, vault: secrets.Vault, text: str, now: dt.datetime) -> tuple[int, int]:
    """Import in one transaction (the caller's); returns (bots, secrets) stored."""
    entries = parse(text)
    stored = 0
    for bot, values in entries:
        farm_bots.add(conn, bot, now, replace=True)
        if values:
            secrets.put(conn, vault, bot.name, values, now)
            stored += len(values)
    return len(entries), stored
