"""`python auth_tool.py x --bot NAME`: where the PIN flow's tokens go for a farm bot."""

from __future__ import annotations

import sys
from collections.abc import Callable

from steward.config import EXIT_CONFIG, Settings

EXIT_USAGE = 64


def bot_token_store(settings: Settings, name: str) -> Callable[[str, str], str] | int:
    """A function that stores a bot's X tokens encrypted, or the exit status when it cannot be
    done: checked before the PIN flow, so nobody authorizes an account for nothing."""
    from steward import db
    from steward.farm import bots, secrets

    vault = secrets.Vault.from_settings(settings)
    if not vault.ready:
        print(secrets.NO_KEY, file=sys.stderr)
        return EXIT_CONFIG
    engine = db.make_engine(settings.database)
    try:
        with engine.connect() as conn:
            bots.get(conn, name)
    except bots.BotError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()

    def store(token: str, token_secret: str) -> str:
        engine = db.make_engine(settings.database)
        try:
            with engine.begin() as conn:
                values = {"x_access_token": token, "x_access_secret": token_secret}
                secrets.put(conn, vault, name, values, db.utcnow())
        finally:
            engine.dispose()
        return f"3. Stored the tokens for bot {name}, encrypted with STEWARD_SECRET_KEY."

    return store
