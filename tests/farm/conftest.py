"""The farm's fixtures: a store with the farm's tables, a Fernet key, and `bots` at the prompt."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from steward import cli


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def bots_cli(monkeypatch, tmp_path, capsys, store_url):
    """`bots(*args, env=...) -> (status, stdout, stderr)`: `python bot.py bots ...`, in process."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "STEWARD_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    def bots(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            m.setenv("DATABASE_URL", store_url)
            for name, value in (env or {}).items():
                m.setenv(name, value)
            status = cli.main(["bots", *args])
        out = capsys.readouterr()
        return status, out.out, out.err

    if store_url.startswith("postgresql"):
        from steward import db

        engine = db.make_engine(store_url)
        db.upgrade(engine)
        engine.dispose()
    return bots


@pytest.fixture
def fake():
    from tests.fakes.x_api import FakeX

    with FakeX(consumer_key="ck", consumer_secret="cs") as server:
        yield server
