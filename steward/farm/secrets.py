"""Bots' tokens encrypted at rest with Fernet (STEWARD_SECRET_KEY), and their rotation.

STEWARD_SECRET_KEY lists Fernet keys separated by commas, newest first: values are encrypted with
the first and read with any (cryptography's MultiFernet), so rotating is "put a new key in front,
run `python bot.py bots rekey`, drop the old key". Without a key nothing secret is stored.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward.farm.store import bot_secrets

NO_KEY = (
    "STEWARD_SECRET_KEY is not set, so the farm will not store tokens; make one with "
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
    " and set it (heroku config:set STEWARD_SECRET_KEY=...)"
)
# The secrets a bot can hold, by network (what `auth_tool.py` and `--with-secrets` carry). The
# two API URLs are not secret but belong to the account; without them a bot uses the worker's
# MASTODON_API_URL and BLUESKY_API_URL.
NAMES = (
    "x_access_token",
    "x_access_secret",
    "mastodon_api_url",
    "mastodon_access_token",
    "bluesky_handle",
    "bluesky_app_password",
    "bluesky_api_url",
)


class SecretError(Exception):
    """A secret that cannot be stored or read; `str()` is one sentence."""


class Vault:
    def __init__(self, keys: str | None) -> None:
        self._fernet = None
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",")])

    @classmethod
    def from_settings(cls, settings) -> Vault:
        key = settings.steward_secret_key
        return cls(key.get_secret_value() if key is not None else None)

    @property
    def ready(self) -> bool:
        return self._fernet is not None

    def encrypt(self, value: str) -> str:
        if self._fernet is None:
            raise SecretError(NO_KEY)
        return self._fernet.encrypt(value.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        from cryptography.fernet import InvalidToken

        if self._fernet is None:
            raise SecretError(NO_KEY)
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretError(
                "a stored token was encrypted with a key STEWARD_SECRET_KEY no longer lists"
            ) from None

    def rotate(self, token: str) -> str:
        if self._fernet is None:
            raise SecretError(NO_KEY)
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def put(conn: Connection, vault: Vault, bot: str, values: dict[str, str], now: dt.datetime) -> None:
    for name, value in values.items():
        if name not in NAMES:
            raise SecretError(f"{name} is not a secret a bot holds; known: {', '.join(NAMES)}")
        if name.endswith("_api_url"):
            value = _url(name, value)
        token = vault.encrypt(value)
        conn.execute(sa.delete(bot_secrets).where(_row(bot, name)))
        conn.execute(sa.insert(bot_secrets).values(bot=bot, name=name, value=token, updated_at=now))


def _url(name: str, value: str) -> str:
    from steward.config.fields import http_url

    try:
        return http_url(value) or ""
    except ValueError:
        raise SecretError(
            f"{name} must be an http(s) URL such as https://mastodon.social"
        ) from None


def get(
    conn: Connection, vault: Vault, bot: str, only: tuple[str, ...] | None = None
) -> dict[str, str]:
    query = sa.select(bot_secrets).where(bot_secrets.c.bot == bot)
    if only is not None:
        query = query.where(bot_secrets.c.name.in_(only))
    rows = conn.execute(query).all()
    return {r.name: vault.decrypt(r.value) for r in rows}


def names(conn: Connection, bot: str) -> list[str]:
    """Which secrets a bot has, without reading them."""
    query = sa.select(bot_secrets.c.name).where(bot_secrets.c.bot == bot)
    return sorted(conn.scalars(query))


def rekey(conn: Connection, vault: Vault) -> int:
    """Re-encrypt every stored secret with the newest key; returns how many."""
    rows = conn.execute(sa.select(bot_secrets)).all()
    for r in rows:
        conn.execute(
            sa.update(bot_secrets).where(_row(r.bot, r.name)).values(value=vault.rotate(r.value))
        )
    return len(rows)


def drop(conn: Connection, bot: str) -> None:
    conn.execute(sa.delete(bot_secrets).where(bot_secrets.c.bot == bot))


def _row(bot: str, name: str):
    return sa.and_(bot_secrets.c.bot == bot, bot_secrets.c.name == name)
