"""Remote control of training runs: which run a command means, parsing a learning rate, and
queueing the command in the store for the run's client to fetch. Knows nothing of Telegram:
problems come back as `ControlError` sentences for the handler to show.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from sqlalchemy.engine import Engine

from steward.training import bookkeeping, store

LR_FORMS = "a number like 0.001 or 3e-4, or a factor like x0.5 or x2"
_FACTOR = re.compile(r"^[x×*]\s*(.+)$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class ControlError(ValueError):
    """A sentence for the owner: why the command cannot be sent."""


def parse_lr(text: str) -> dict[str, float]:
    """`0.001`, `3e-4` -> {"value": ...}; `x0.5`, `*2` -> {"factor": ...}."""
    raw = text.strip()
    factor = _FACTOR.match(raw)
    body = factor.group(1) if factor else raw
    try:
        number = float(body)
    except ValueError:
        raise ControlError(f"{text!r} is not a learning rate; use {LR_FORMS}") from None
    if not math.isfinite(number) or number <= 0:
        what = "factor" if factor else "learning rate"
        raise ControlError(f"a {what} must be a positive number, not {body}")
    return {"factor": number} if factor else {"value": number}


def describe_lr(argument: dict[str, float]) -> str:
    if "factor" in argument:
        return f"x{argument['factor']:g}"
    return f"{argument['value']:g}"


def pick_run(engine: Engine, ref: str | None, *, active: bool = False) -> Any:
    """The run `ref` names (id, `#id` or name), or the only active run when `ref` is None."""
    with engine.connect() as conn:
        if ref is None:
            running = bookkeeping.active_runs(conn)
            if len(running) == 1:
                return running[0]
            if not running:
                raise ControlError("No run is active. /runs lists the recent ones.")
            ids = ", ".join(f"{r.id} ({r.name})" for r in running)
            raise ControlError(f"Several runs are active; name one: {ids}.")
        run = bookkeeping.find_run(conn, ref)
    if run is None:
        raise ControlError(f"There is no run {ref!r}. /runs lists them.")
    if active and run.state not in store.ACTIVE:
        raise ControlError(not_active(run))
    return run


def queue(
    engine: Engine,
    run_id: int,
    kind: str,
    argument: dict[str, Any] | None,
    chat_id: str | int | None,
    now: dt.datetime,
) -> int:
    """Store a command for the run (blocking); its client fetches it within about a second."""
    with engine.begin() as conn:
        run = store.get_run(conn, run_id)
        if run is None or run.state not in store.ACTIVE:
            if run is None:
                raise ControlError(f"Run {run_id} was forgotten meanwhile; nothing was sent.")
            raise ControlError(f"{not_active(run)} Nothing was sent.")
        return store.add_command(conn, run_id, kind, argument, now, chat_id=chat_id)


def not_active(run: Any) -> str:
    """Why a command to this ended or lost run is refused, in a sentence."""
    if run.state == "lost":
        return (
            f"Run {run.id} ({run.name}) is lost: nothing heard from it since "
            f"{run.ended_at:%Y-%m-%d %H:%M} UTC, so no one would read the command. "
            f"/forget {run.id} removes it."
        )
    return f"Run {run.id} ({run.name}) has already {run.state}."


def forget(engine: Engine, ref: str) -> Any:
    """Delete the run `ref` names with all it stored; a run still reporting is refused."""
    with engine.begin() as conn:
        run = bookkeeping.find_run(conn, ref)
        if run is None:
            raise ControlError(f"There is no run {ref!r}. /runs lists them.")
        if run.state == "running":
            raise ControlError(
                f"Run {run.id} ({run.name}) is still reporting; /stop it first, or wait for it "
                "to end."
            )
        store.forget_run(conn, run.id)
    return run


def custom_name(text: str) -> str:
    if not _NAME.match(text):
        raise ControlError(
            f"{text!r} is not a command name: use 1-64 letters, digits, '_', '-' or '.'"
        )
    return text
