"""Training runs in the store: runs, their metrics and events, and the commands sent to them.

The training client (any machine) writes runs, metrics, events and acknowledgements; the
worker reads them for notifications and inserts commands. All functions here are synchronous
and take a connection, so callers choose the transaction (the worker calls them in a thread).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.db import UTCDateTime, metadata

# "lost": nothing heard from the process for TRAINING_LOST_AFTER (killed, machine gone).
STATES = ("running", "finished", "crashed", "stalled", "stopped", "lost")
ACTIVE = ("running", "stalled")
COMMAND_KINDS = ("stop", "set_lr", "save", "custom")

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("config", sa.JSON, nullable=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime(), nullable=True),
    # Last time the training loop itself reported (log, track, expect): silence here is a stall.
    sa.Column("last_heartbeat_at", UTCDateTime(), nullable=False),
    # Last time the client's background thread reached the store: the process is alive.
    sa.Column("last_seen_at", UTCDateTime(), nullable=True),
    # The loop promised to report again before this moment (long validation, checkpoint).
    sa.Column("expect_until", UTCDateTime(), nullable=True),
    # Latest progress from run.track(): {"desc", "n", "total"}.
    sa.Column("progress", sa.JSON, nullable=True),
    sa.Column("error_type", sa.String(200), nullable=True),
    sa.Column("error_message", sa.Text, nullable=True),
    sa.Column("traceback_tail", sa.Text, nullable=True),
    # The watcher's bookkeeping: the outbox key of the progress message edited in place,
    # when it was last edited, and the last state it told the owner about.
    sa.Column("progress_key", sa.String(200), nullable=True),
    sa.Column("progress_sent_at", UTCDateTime(), nullable=True),
    sa.Column("notified_state", sa.String(20), nullable=True),
    # The last metric row the watcher has checked for NaN and spikes, and what it has said
    # (stall message key, metrics already alerted) so that nothing is said twice.
    sa.Column("checked_metric_id", sa.Integer, nullable=True),
    sa.Column("health", sa.JSON, nullable=True),
    # What a step counts ("epoch" for Keras; None: steps), the run's tags for /runs <tag>, and
    # its metric alert rules as given to Run(alerts=...), checked by the watcher.
    sa.Column("step_unit", sa.String(16), nullable=True),
    sa.Column("tags", sa.JSON, nullable=True),
    sa.Column("alerts", sa.JSON, nullable=True),
    # The machine's latest sample (system.py): host RAM, the process's memory, GPUs.
    sa.Column("system", sa.JSON, nullable=True),
)

# NaN is kept as NULL: SQLite turns NaN into NULL anyway, so both backends read it back the same.
metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Index("ix_metrics_run_id_name_step", "run_id", "name", "step"),
)

run_events = sa.Table(
    "run_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_run_events_run_id", "run_id"),
)

run_commands = sa.Table(
    "run_commands",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("argument", sa.JSON, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("fetched_at", UTCDateTime(), nullable=True),
    sa.Column("acked_at", UTCDateTime(), nullable=True),
    sa.Column("ok", sa.Boolean, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    # Who asked (the acknowledgement goes back there) and when the owner was told the outcome.
    sa.Column("chat_id", sa.String(64), nullable=True),
    sa.Column("reported_at", UTCDateTime(), nullable=True),
    sa.Index("ix_run_commands_run_id", "run_id"),
)

TABLES = (runs, metrics, run_events, run_commands)


def ensure_schema(engine: Engine) -> None:
    """Create the training tables through the migrations when this store has none yet.

    A store the worker already migrated is left alone, even if it is newer than this client.
    """
    if not sa.inspect(engine).has_table("runs"):
        from steward import db

        db.upgrade(engine)


# --- written by the training client -------------------------------------------------------


def register_run(
    conn: Connection,
    *,
    name: str,
    host: str,
    pid: int,
    command: str,
    config: dict[str, Any] | None,
    started_at: dt.datetime,
    **extra: Any,
) -> int:
    """`extra`: step_unit, tags, alerts; only those given are written, so that a plain run can
    still register in a store the worker has not migrated yet."""
    values = dict(name=name[:200], host=host[:200], pid=pid, command=command, config=config)
    values.update({k: v for k, v in extra.items() if v is not None})
    values.update(state="running", started_at=started_at, last_heartbeat_at=started_at)
    return conn.execute(runs.insert().values(**values).returning(runs.c.id)).scalar_one()


def add_metrics(
    conn: Connection, run_id: int, points: Sequence[tuple[int, str, float, dt.datetime]]
):
    if points:
        rows = [
            {"run_id": run_id, "step": s, "name": n[:200], "value": _storable(v), "time": t}
            for s, n, v, t in points
        ]
        conn.execute(metrics.insert(), rows)


def add_events(conn: Connection, run_id: int, events: Sequence[tuple[dt.datetime, str, str]]):
    if events:
        rows = [{"run_id": run_id, "time": t, "level": lv, "message": m} for t, lv, m in events]
        conn.execute(run_events.insert(), rows)


def touch_run(conn: Connection, run_id: int, *, seen_at: dt.datetime, **values: Any) -> None:
    """Record that the client is alive (plus heartbeat, progress, expect_until when given).

    A stalled or lost run whose loop reports again is running again; an ended run stays ended.
    """
    values = {k: v for k, v in values.items() if v is not None}
    stmt = runs.update().where(runs.c.id == run_id).values(last_seen_at=seen_at, **values)
    if "last_heartbeat_at" in values:
        # Only the loop reporting again revives a stalled run, not the thread being alive.
        revived = runs.c.state.in_(("stalled", "lost"))
        stmt = stmt.values(
            state=sa.case((revived, "running"), else_=runs.c.state),
            ended_at=sa.case((revived, None), else_=runs.c.ended_at),
        )
    conn.execute(stmt)


def take_commands(conn: Connection, run_id: int, now: dt.datetime) -> list[sa.Row]:
    """The run's commands not yet fetched, oldest first, marked fetched."""
    rows = conn.execute(
        sa.select(run_commands)
        .where(run_commands.c.run_id == run_id, run_commands.c.fetched_at.is_(None))
        .order_by(run_commands.c.id)
    ).all()
    if rows:
        conn.execute(
            run_commands.update()
            .where(run_commands.c.id.in_([r.id for r in rows]))
            .values(fetched_at=now)
        )
    return rows


def ack_command(conn: Connection, command_id: int, *, ok: bool, message: str, at: dt.datetime):
    conn.execute(
        run_commands.update()
        .where(run_commands.c.id == command_id, run_commands.c.acked_at.is_(None))
        .values(acked_at=at, ok=ok, message=message[:2000])
    )


def end_run(conn: Connection, run_id: int, state: str, at: dt.datetime, **error: str | None):
    """Mark the run ended unless it already is (the first ending recorded wins)."""
    conn.execute(
        runs.update()
        .where(runs.c.id == run_id, runs.c.state.in_(ACTIVE))
        .values(state=state, ended_at=at, **error)
    )


# --- read and written by the worker -------------------------------------------------------


def add_command(
    conn: Connection,
    run_id: int,
    kind: str,
    argument: dict[str, Any] | None,
    now: dt.datetime,
    chat_id: str | int | None = None,
) -> int:
    if kind not in COMMAND_KINDS:
        raise ValueError(f"unknown command kind {kind!r}")
    chat = None if chat_id is None else str(chat_id)
    stmt = run_commands.insert().values(
        run_id=run_id, kind=kind, argument=argument, created_at=now, chat_id=chat
    )
    return conn.execute(stmt.returning(run_commands.c.id)).scalar_one()


def get_run(conn: Connection, run_id: int) -> sa.Row | None:
    return conn.execute(sa.select(runs).where(runs.c.id == run_id)).one_or_none()


TAG_SCAN = 1000  # runs looked through for a tag (JSON containment differs per backend)


def recent_runs(conn: Connection, limit: int = 10, tag: str | None = None) -> list[sa.Row]:
    """The newest runs, or the newest runs tagged `tag`."""
    if tag is None:
        return conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
    stmt = sa.select(runs).where(runs.c.tags.is_not(None)).order_by(runs.c.id.desc())
    tagged = [r for r in conn.execute(stmt.limit(TAG_SCAN)) if tag in (r.tags or [])]
    return tagged[:limit]


def runs_in(conn: Connection, states: Iterable[str]) -> list[sa.Row]:
    return conn.execute(sa.select(runs).where(runs.c.state.in_(list(states)))).all()


def deadline(run: Any, stall_after: dt.timedelta) -> dt.datetime:
    """When silence from this run becomes alarming: its promise or the usual allowance."""
    usual = run.last_heartbeat_at + stall_after
    return max(usual, run.expect_until) if run.expect_until else usual


def overdue_runs(conn: Connection, now: dt.datetime, stall_after: dt.timedelta) -> list[sa.Row]:
    """Running runs that have been silent past their deadline."""
    return [r for r in runs_in(conn, ["running"]) if deadline(r, stall_after) < now]


def mark_stalled(conn: Connection, run_id: int, heartbeat: dt.datetime) -> bool:
    """Running -> stalled, only if nothing reported since `heartbeat` was read."""
    stmt = (
        runs.update()
        .where(
            runs.c.id == run_id,
            runs.c.state == "running",
            runs.c.last_heartbeat_at == heartbeat,
        )
        .values(state="stalled")
    )
    return conn.execute(stmt).rowcount == 1


def mark_lost(conn: Connection, now: dt.datetime, lost_after: dt.timedelta) -> list[int]:
    """Active runs whose loop and client thread have both been silent for `lost_after`: lost,
    ended at the last moment anything was heard from them."""
    cutoff = now - lost_after
    silent = sa.and_(
        runs.c.state.in_(ACTIVE),
        runs.c.last_heartbeat_at < cutoff,
        sa.or_(runs.c.last_seen_at.is_(None), runs.c.last_seen_at < cutoff),
    )
    found = conn.execute(sa.select(runs).where(silent)).all()
    lost = []
    for run in found:
        heard = max(run.last_heartbeat_at, run.last_seen_at or run.last_heartbeat_at)
        stmt = runs.update().where(runs.c.id == run.id, silent).values(state="lost", ended_at=heard)
        if conn.execute(stmt).rowcount == 1:
            lost.append(run.id)
    return lost


def forget_run(conn: Connection, run_id: int) -> None:
    """Delete a run with its metrics, events and commands."""
    for table in (metrics, run_events, run_commands):
        conn.execute(table.delete().where(table.c.run_id == run_id))
    conn.execute(runs.delete().where(runs.c.id == run_id))


def metric_names(conn: Connection, run_id: int) -> list[str]:
    stmt = sa.select(metrics.c.name).where(metrics.c.run_id == run_id).distinct()
    return sorted(conn.execute(stmt).scalars())


def series(
    conn: Connection, run_id: int, names: Iterable[str] | None = None, since_step: int | None = None
) -> dict[str, tuple[list[int], list[float]]]:
    """Each metric as (steps, values) in step order; NaN where NaN was logged."""
    stmt = sa.select(metrics.c.name, metrics.c.step, metrics.c.value).where(
        metrics.c.run_id == run_id
    )
    if names is not None:
        stmt = stmt.where(metrics.c.name.in_(list(names)))
    if since_step is not None:
        stmt = stmt.where(metrics.c.step > since_step)
    out: dict[str, tuple[list[int], list[float]]] = {}
    for name, step, value in conn.execute(
        stmt.order_by(metrics.c.name, metrics.c.step, metrics.c.id)
    ):
        steps, values = out.setdefault(name, ([], []))
        steps.append(step)
        values.append(math.nan if value is None else value)
    return out


def latest_metrics(conn: Connection, run_id: int) -> dict[str, tuple[int, float]]:
    """The last logged value of each metric: name -> (step, value)."""
    last = (
        sa.select(sa.func.max(metrics.c.id))
        .where(metrics.c.run_id == run_id)
        .group_by(metrics.c.name)
        .scalar_subquery()
    )
    stmt = sa.select(metrics.c.name, metrics.c.step, metrics.c.value).where(metrics.c.id.in_(last))
    return {
        n: (s, math.nan if v is None else v)
        for n, s, v in conn.execute(stmt.order_by(metrics.c.name))
    }


def alerts_after(conn: Connection, run_id: int, after: int) -> list[sa.Row]:
    """The run's run.alert() messages after event id `after`, oldest first."""
    stmt = sa.select(run_events).where(
        run_events.c.run_id == run_id,
        run_events.c.id > after,
        run_events.c.level.startswith("alert:"),
    )
    return conn.execute(stmt.order_by(run_events.c.id).limit(50)).all()


def recent_events(conn: Connection, run_id: int, limit: int = 5) -> list[sa.Row]:
    stmt = (
        sa.select(run_events)
        .where(run_events.c.run_id == run_id)
        .order_by(run_events.c.id.desc())
        .limit(limit)
    )
    return list(reversed(conn.execute(stmt).all()))


@dataclass(frozen=True)
class CommandStatus:
    kind: str
    fetched: bool
    acked: bool
    ok: bool | None
    message: str | None


def command_status(conn: Connection, command_id: int) -> CommandStatus | None:
    row = conn.execute(sa.select(run_commands).where(run_commands.c.id == command_id)).one_or_none()
    if row is None:
        return None
    return CommandStatus(
        row.kind, row.fetched_at is not None, row.acked_at is not None, row.ok, row.message
    )


def _storable(value: float) -> float | None:
    return None if math.isnan(value) else value
