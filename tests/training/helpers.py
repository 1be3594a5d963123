"""Reading back what a run stored, and sending commands the way the worker does."""

from __future__ import annotations

import importlib
import importlib.util
import os

import pytest
import sqlalchemy as sa

from steward import db
from steward.training import store


def send(engine, run_id: int, kind: str, argument: dict | None = None) -> int:
    with engine.begin() as conn:
        return store.add_command(conn, run_id, kind, argument, db.utcnow())


def status(engine, command_id: int) -> store.CommandStatus:
    with engine.connect() as conn:
        return store.command_status(conn, command_id)


def series(engine, run_id: int) -> dict[str, tuple[list[int], list[float]]]:
    with engine.connect() as conn:
        return store.series(conn, run_id)


def only_run(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(store.runs)).one()


def need(module: str, why: str):
    """Import an optional framework: skipped with `why` when missing, unless CI requires it."""
    if os.environ.get("STEWARD_REQUIRE_ML"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=why)


def need_installed(module: str, why: str) -> None:
    """Like `need`, for a framework that only a subprocess imports (Keras picks its backend at
    import, so this process must not import it first)."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("STEWARD_REQUIRE_ML"):
            raise ModuleNotFoundError(f"{module} is required here: {why}")
        pytest.skip(why)
