"""The watcher's bookkeeping in the store: what has been said about each run, claimed atomically.

Every claim is a conditional UPDATE that succeeds for exactly one caller (row count 1): the
watcher writes its message to the outbox in the same transaction, so a restart or a second
worker can neither repeat a message nor lose one. Synchronous; callers run it in a thread.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from steward.training.store import ACTIVE, metrics, run_commands, runs

SCAN_BATCH = 5000  # metric rows checked per run per tick; a backlog is worked through in steps


def runs_to_watch(conn: Connection) -> list[sa.Row]:
    """Active runs, and ended runs whose end the owner has not been told about yet."""
    pending = sa.or_(runs.c.notified_state.is_(None), runs.c.notified_state != runs.c.state)
    stmt = sa.select(runs).where(sa.or_(runs.c.state.in_(ACTIVE), pending)).order_by(runs.c.id)
    return conn.execute(stmt).all()


def claim_state(conn: Connection, run: Any, health: dict | None = None) -> bool:
    """Move notified_state from what `run` shows to its state (and store `health`)."""
    old = run.notified_state
    cond = runs.c.notified_state.is_(None) if old is None else runs.c.notified_state == old
    values: dict[str, Any] = {"notified_state": run.state}
    if health is not None:
        values["health"] = health
    stmt = runs.update().where(runs.c.id == run.id, runs.c.state == run.state, cond)
    return conn.execute(stmt.values(**values)).rowcount == 1


def claim_live_message(conn: Connection, run_id: int, key: str, at: dt.datetime) -> bool:
    """Give the run its one live message (the first caller only)."""
    stmt = (
        runs.update()
        .where(runs.c.id == run_id, runs.c.progress_key.is_(None))
        .values(progress_key=key, progress_sent_at=at)
    )
    return conn.execute(stmt).rowcount == 1


def claim_live_edit(conn: Connection, run: Any, at: dt.datetime) -> bool:
    """Take the next edit of the live message, if nobody edited it since `run` was read."""
    stmt = (
        runs.update()
        .where(runs.c.id == run.id, runs.c.progress_sent_at == run.progress_sent_at)
        .values(progress_sent_at=at)
    )
    return conn.execute(stmt).rowcount == 1


def news_since(conn: Connection, run: Any, since: dt.datetime) -> bool:
    """Did the run log a metric or report progress after `since`?"""
    if run.last_heartbeat_at > since:
        return True
    stmt = sa.select(sa.func.max(metrics.c.time)).where(metrics.c.run_id == run.id)
    latest = conn.scalar(stmt)
    return latest is not None and latest > since


def unchecked_losses(
    conn: Connection, run: Any, also: Sequence[str] = ()
) -> tuple[list[sa.Row], int | None]:
    """Loss rows (and rows of the metrics in `also`: those with alert rules) after the run's
    check cursor, oldest first, and where the cursor moves to (None: nothing new at all).

    Only the run's own thread writes its metrics, one transaction at a time, so its row ids
    grow in commit order and a cursor on them never skips a row.
    """
    after = run.checked_metric_id or 0
    top = conn.scalar(
        sa.select(sa.func.max(metrics.c.id)).where(metrics.c.run_id == run.id, metrics.c.id > after)
    )
    if top is None:
        return [], None
    stmt = (
        sa.select(metrics.c.id, metrics.c.name, metrics.c.step, metrics.c.value)
        .where(
            metrics.c.run_id == run.id,
            metrics.c.id > after,
            metrics.c.id <= top,
            sa.or_(sa.func.lower(metrics.c.name).contains("loss"), metrics.c.name.in_(list(also))),
        )
        .order_by(metrics.c.id)
        .limit(SCAN_BATCH)
    )
    rows = conn.execute(stmt).all()
    return rows, (rows[-1].id if len(rows) == SCAN_BATCH else top)


def history_before(conn: Connection, run_id: int, name: str, before_id: int, n: int) -> list:
    """The last `n` values of one metric logged before row `before_id`, oldest first."""
    stmt = (
        sa.select(metrics.c.value)
        .where(metrics.c.run_id == run_id, metrics.c.name == name, metrics.c.id < before_id)
        .order_by(metrics.c.id.desc())
        .limit(n)
    )
    return [v for v in reversed(conn.scalars(stmt).all()) if v is not None]


def advance_check(conn: Connection, run: Any, last_id: int, health: dict) -> bool:
    """Move the check cursor to `last_id` (and store `health`) unless another worker did."""
    old = run.checked_metric_id
    cond = runs.c.checked_metric_id.is_(None) if old is None else runs.c.checked_metric_id == old
    stmt = runs.update().where(runs.c.id == run.id, cond)
    return conn.execute(stmt.values(checked_metric_id=last_id, health=health)).rowcount == 1


def save_health(conn: Connection, run: Any, health: dict) -> None:
    """Store the run's notes. Unconditional: what is sent with them carries an outbox key, so a
    second worker doing the same writes the same notes and no second message."""
    conn.execute(runs.update().where(runs.c.id == run.id).values(health=health))


def unreported_outcomes(conn: Connection) -> list[sa.Row]:
    """Commands a run has answered whose answer the owner has not heard, with the run's name."""
    stmt = (
        sa.select(run_commands, runs.c.name.label("run_name"))
        .join(runs, runs.c.id == run_commands.c.run_id)
        .where(run_commands.c.acked_at.is_not(None), run_commands.c.reported_at.is_(None))
        .order_by(run_commands.c.id)
    )
    return conn.execute(stmt).all()


def unanswered_commands(conn: Connection, run_id: int) -> list[sa.Row]:
    """Commands the run never answered (it ended first), not yet reported."""
    stmt = sa.select(run_commands).where(
        run_commands.c.run_id == run_id,
        run_commands.c.acked_at.is_(None),
        run_commands.c.reported_at.is_(None),
    )
    return conn.execute(stmt.order_by(run_commands.c.id)).all()


def claim_report(conn: Connection, command_id: int, at: dt.datetime) -> bool:
    stmt = (
        run_commands.update()
        .where(run_commands.c.id == command_id, run_commands.c.reported_at.is_(None))
        .values(reported_at=at)
    )
    return conn.execute(stmt).rowcount == 1


def pending_commands(conn: Connection, run_id: int) -> list[sa.Row]:
    """Commands sent to the run and not answered yet (for /run)."""
    stmt = sa.select(run_commands).where(
        run_commands.c.run_id == run_id, run_commands.c.acked_at.is_(None)
    )
    return conn.execute(stmt.order_by(run_commands.c.id)).all()


def find_run(conn: Connection, ref: str) -> sa.Row | None:
    """A run by id (`3`, `#3`) or by name (the newest run of that name)."""
    text = ref.strip().lstrip("#")
    if text.isdigit():
        return conn.execute(sa.select(runs).where(runs.c.id == int(text))).one_or_none()
    stmt = sa.select(runs).where(runs.c.name == ref.strip()).order_by(runs.c.id.desc()).limit(1)
    return conn.execute(stmt).one_or_none()


def active_runs(conn: Connection) -> list[sa.Row]:
    return conn.execute(sa.select(runs).where(runs.c.state.in_(ACTIVE)).order_by(runs.c.id)).all()
