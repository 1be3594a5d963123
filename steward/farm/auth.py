"""`python auth_tool.py x|mastodon|bluesky --bot NAME`: where a flow's tokens go for a farm bot.

One path for every network: check before the flow (a key to encrypt with, a bot to store for),
so nobody authorizes an account for nothing; store after it, encrypted, printing only names.
"""

from __future__ import annotations

import sys

from steward.config import EXIT_CONFIG, Settings

EXIT_USAGE = 64
# A bot's values a flow offers as its defaults: where the account lives and its name, not secret.
DEFAULTS = ("mastodon_api_url", "bluesky_handle", "bluesky_api_url")


class BotTokens:
    """`store(values) -> the line to print`: puts a bot's secrets (named as in `secrets.NAMES`)
    in the store, encrypted. `stored` holds the bot's `DEFAULTS` already there."""

    def __init__(self, settings: Settings, name: str, stored: dict[str, str]) -> None:
        self.settings, self.name, self.stored = settings, name, stored

    def __call__(self, values: dict[str, str]) -> str:
        from steward import db
        from steward.farm import secrets

        vault = secrets.Vault.from_settings(self.settings)
        engine = db.make_engine(self.settings.database)
        try:
            with engine.begin() as conn:
                secrets.put(conn, vault, self.name, values, db.utcnow())
        finally:
            engine.dispose()
        return (
            f"Stored the tokens for bot {self.name}, encrypted with STEWARD_SECRET_KEY "
            f"({', '.join(values)})."
        )


def bot_token_store(settings: Settings, name: str) -> BotTokens | int:
    """The store for a bot's tokens, or the exit status (said on stderr) when it cannot be done."""
    from steward import db
    from steward.farm import bots, secrets
    from steward.farm.cli import ensure_migrated

    vault = secrets.Vault.from_settings(settings)
    if not vault.ready:
        print(secrets.NO_KEY, file=sys.stderr)
        return EXIT_CONFIG
    engine = db.make_engine(settings.database)
    try:
        ensure_migrated(engine)
        with engine.connect() as conn:
            bots.get(conn, name)
            try:
                stored = secrets.get(conn, vault, name, only=DEFAULTS)
            except secrets.SecretError:
                stored = {}  # under a key no longer listed: the flow asks, the new values win
    except bots.BotError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    return BotTokens(settings, name, stored)
