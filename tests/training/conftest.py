"""Training stores: a SQLite file (and Postgres when TEST_DATABASE_URL is set) with the tables."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from steward import db
from steward.training import store
from tests.training.world import world  # noqa: F401  (the watcher tests' fixture)

ROOT = Path(__file__).resolve().parents[2]


def create_tables(engine) -> None:
    """The migrations when the whole revision chain is present, else just the training tables."""
    try:
        db.head_revision()
    except Exception:
        db.metadata.create_all(engine, tables=store.TABLES)
    else:
        db.upgrade(engine)


@pytest.fixture
def url(store_url) -> str:
    engine = db.make_engine(store_url)
    create_tables(engine)
    engine.dispose()
    return store_url


@pytest.fixture
def engine(url):
    eng = db.make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def script(tmp_path):
    """Run a Python snippet as a training process would: a fresh interpreter, this checkout."""

    def start(code: str, **popen) -> subprocess.Popen:
        path = tmp_path / "train.py"
        path.write_text(textwrap.dedent(code))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.Popen(
            [sys.executable, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **popen,
        )

    return start
