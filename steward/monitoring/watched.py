"""Checks added at run time with /watch: kept in the store, loaded as specs, run when due.

On SQLite configured checks (CHECKS) are grouped into one scheduled job per interval when the
worker starts. A watched check can appear at any moment, so one job with a fixed cadence
(`CADENCE`) reads the watched checks from the store on every tick and runs those whose interval
has passed since their last sample. On Postgres each watched check is a unit of work instead,
shared by the workers like a configured one (shared.py).
Configured and watched checks share one namespace: a watched check cannot take a configured
name, and should CHECKS later take a watched one, the configured check wins.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Iterable

from sqlalchemy.engine import Engine

from steward.monitoring import store
from steward.monitoring.alerts import AlertState
from steward.monitoring.options import ChecksError
from steward.monitoring.private import refused_target
from steward.monitoring.spec import CheckSpec, build

log = logging.getLogger("steward.monitoring")

CADENCE = dt.timedelta(seconds=10)  # how often the watched checks are looked at
KINDS = ("http", "tcp", "evm_lag")  # what /watch offers; python checks run code, so CHECKS only
SHORTEST = CADENCE
LONGEST = dt.timedelta(days=1)


def load(engine: Engine, configured: Collection[str], quiet: set[str]) -> dict[str, CheckSpec]:
    """The stored watched checks as specs, oldest first. A row that no longer builds (or whose
    name CHECKS took since) is skipped, and logged once per process through `quiet`."""
    specs: dict[str, CheckSpec] = {}
    for row in store.read_watched(engine):
        if row.name in configured:
            _once(quiet, row.name, "watched check %r is shadowed by the CHECKS entry of that name")
            continue
        try:
            specs[row.name] = build({**row.options, "name": row.name, "kind": row.kind})
        except ChecksError as exc:
            _once(quiet, row.name, f"watched check %r is skipped: {exc}")
    return specs


def _once(quiet: set[str], name: str, message: str) -> None:
    if name not in quiet:
        quiet.add(name)
        log.warning(message, name)


def add(
    engine: Engine,
    options: dict,
    configured: Collection[str],
    chat_id: str | None,
    user_id: int | None,
    now: dt.datetime,
    allow_private: bool = False,
) -> str | None:
    """Store a watched check from its options (name included); None, or why it was not added.
    Call it in a thread: a target's name is resolved to judge its addresses (private.py)."""
    name = options["name"]
    if name in configured:
        return f"{name} is a check from CHECKS already."
    try:
        build(options)
    except ChecksError as exc:
        return f"{exc}."
    if not allow_private and (why := refused_target(options)) is not None:
        return f"{why}."
    rest = {k: v for k, v in options.items() if k not in ("name", "kind")}
    if not store.add_watched(engine, name, options["kind"], rest, chat_id, user_id, now):
        return f"{name} was taken meanwhile by another check added with /watch."
    log.info("watched check %s added (%s)", name, options["kind"])
    return None


def name_problem(engine: Engine, name: str, configured: Collection[str]) -> str | None:
    """Why `name` cannot be used for a new watched check, or None when it is free."""
    if name in configured:
        return f"{name} is a check from CHECKS already."
    if any(row.name == name for row in store.read_watched(engine)):
        return f"{name} is taken by another check added with /watch."
    return None


def due(
    specs: Iterable[CheckSpec],
    states: dict[str, AlertState],
    at: dt.datetime,
    default_interval: int,
) -> list[CheckSpec]:
    """The checks whose interval has passed since their last sample at tick time `at`.

    Half a cadence early counts: a sample is stamped a moment after its tick, so a strict
    comparison would skip every other tick and double the interval.
    """
    out = []
    for spec in specs:
        last = states.get(spec.name, AlertState(spec.name)).last_at
        every = dt.timedelta(seconds=spec.interval or default_interval)
        if last is None or at - last >= every - CADENCE / 2:
            out.append(spec)
    return out
