"""Shared fixtures: stores on SQLite and (when TEST_DATABASE_URL is set) real Postgres."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

from steward import db

# Durations as timedelta in python-telegram-bot 22, as the worker runs it (steward/cli.py).
os.environ.setdefault("PTB_TIMEDELTA", "true")

PG_URL = os.environ.get("TEST_DATABASE_URL")
NO_PG = "TEST_DATABASE_URL is not set (CI sets it to the local PostgreSQL server)"


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'steward.sqlite'}"


@pytest.fixture
def pg_url():
    """A fresh, empty Postgres schema for this test, dropped afterwards."""
    if not PG_URL:
        pytest.skip(NO_PG)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = db.normalize_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    """Runs the test once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'steward.sqlite'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(store_url):
    """A migrated store on each backend."""
    eng = db.make_engine(store_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()
