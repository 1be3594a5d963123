"""Building a Poster against the fake X, with a clock the test moves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from steward.config import load_settings
from steward.features import Services
from steward.posting import store
from steward.posting.poster import Poster
from steward.telegram.outbox import Outbox
from steward.telegram.store import outbox as outbox_table
from tests.worker_process import ROOT

OWNER_CHAT = "1000"
X_ENV = {
    "X_CONSUMER_KEY": "ck",
    "X_CONSUMER_SECRET": "cs",
    "X_ACCESS_TOKEN": "42-token",
    "X_ACCESS_SECRET": "42-secret",
}


def services(engine, clock, **env: str) -> Services:
    settings = load_settings(environ={"TELEGRAM_CHAT_ID": OWNER_CHAT, **env}, env_file=None)
    outbox = Outbox(engine, settings.telegram_chat_id, clock=clock)
    return Services(settings=settings, engine=engine, outbox=outbox, clock=clock)


def poster(engine, clock, **env: str) -> Poster:
    """A fresh Poster, as after a restart: nothing carried over but the store."""
    return Poster.from_services(services(engine, clock, **env))


def x_env(fake, **env: str) -> dict[str, str]:
    return {**X_ENV, "X_API_URL": fake.url, **env}


def rows(engine, channel: str | None = None) -> list[store.Post]:
    with engine.connect() as conn:
        found = list(reversed(store.recent(conn, 10_000)))
    return [p for p in found if channel is None or p.channel == channel]


def outbox_rows(engine) -> list[sa.Row]:
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox_table).order_by(outbox_table.c.id)).all()


def tweet_calls(fake) -> list[dict]:
    return [c for c in fake.calls if c["path"] == "/2/tweets"]


def bot(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`python bot.py ARGS` to the end, as cron would run it; stdout and stderr together."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
