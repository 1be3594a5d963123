"""The training client's one background thread: batches what the loop logged into the store.

The training thread only appends to deques in a `Mailbox`; everything slow happens here:
turning tensors and numpy scalars into floats, writing batches about once a second, sending
heartbeats, fetching commands, and holding data (up to a bound) while the store is unreachable.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from steward import db
from steward.training import store, system

log = logging.getLogger("steward.training")

MAX_EVENTS = 1000
MAX_BACKOFF = 60.0


@dataclass
class Mailbox:
    """What the training thread and the writer share; deque appends and pops are atomic."""

    max_points: int
    # (step or None, {name: value}, time.time()) per log() call
    entries: deque = field(init=False)
    events: deque = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    acks: deque = field(default_factory=deque)
    inbox: deque = field(default_factory=deque)
    # Single assignments are atomic too: the writer reads the latest value.
    # (desc, n, total, time.time(), when this phase started, unit or None)
    progress: tuple | None = None
    expect_until: float | None = None
    expect_at: float | None = None  # when expect() was called: it counts as a heartbeat
    final: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.entries = deque(maxlen=self.max_points)


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _short(exc: BaseException) -> str:
    """One line about a store error, without parameters or the statement."""
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {first[0][:200] if first else ''}"


def _progress_json(progress: tuple) -> dict[str, Any]:
    """What the store keeps of a progress report: the counts, the unit, and an ETA in seconds."""
    desc, n, total, at, started, unit = progress
    out: dict[str, Any] = {"desc": desc, "n": n, "total": total}
    if unit:
        out["unit"] = unit
    if total and 0 < n < total and at > started:
        out["eta"] = round((at - started) / n * (total - n), 1)
    return out


class Writer:
    def __init__(
        self,
        mailbox: Mailbox,
        engine: Engine,
        registration: dict[str, Any],
        *,
        interval: float,
        on_registered: Callable[[int], None],
    ) -> None:
        self.box = mailbox
        self.engine = engine
        self.registration = registration
        self.interval = interval
        self.on_registered = on_registered
        self.run_id: int | None = None
        self.points: deque = deque(maxlen=mailbox.max_points)
        self.events: deque = deque(maxlen=MAX_EVENTS)
        self.acks: list[tuple] = []
        self.dropped = 0
        self.failures = 0
        self.warned = False
        self.retry_at = 0.0
        self.delivered = False  # the last attempt reached the store
        self.ended = False
        self.last_step = -1
        self.heartbeat = 0.0
        self.sent_heartbeat = 0.0
        self.bad_names: set[str] = set()
        self.sampled_at = float("-inf")
        self.system: dict[str, Any] | None = None
        self._kick = threading.Event()
        self._cond = threading.Condition()
        self._started = 0
        self._done = 0
        self._stopping = False
        self.thread = threading.Thread(target=self._loop, name="steward-training", daemon=True)

    # --- thread control -------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def flush(self, timeout: float) -> bool:
        """Ask for a delivery cycle now and wait for one that started after this call."""
        if not self.thread.is_alive():
            return False
        with self._cond:
            target = self._started + 1
            self._kick.set()
            self._cond.wait_for(lambda: self._done >= target, timeout)
            return self._done >= target and self.delivered

    def stop(self, timeout: float) -> bool:
        """Deliver what is left (the final state included) within `timeout`, then end the thread."""
        self.retry_at = 0.0  # a pending backoff must not eat the exit budget
        ok = self.flush(timeout)
        self._stopping = True
        self._kick.set()
        self.thread.join(max(0.0, min(timeout, 0.5)))
        return ok

    def _loop(self) -> None:
        while not self._stopping:
            self._kick.wait(self.interval)
            self._kick.clear()
            with self._cond:
                self._started += 1
                number = self._started
            try:
                self.cycle()
            except Exception:  # never let the thread die: the loop must keep its client
                log.exception("training client: unexpected error while delivering")
            with self._cond:
                self._done = number
                self._cond.notify_all()
        # The thread owns the engine: closing its connections here covers a stop that timed
        # out as well as one that finished.
        self.engine.dispose()

    # --- one cycle ------------------------------------------------------------------------

    def cycle(self) -> None:
        self._drain()
        final = self.box.final
        if self.ended or (time.monotonic() < self.retry_at and final is None):
            return
        try:
            commands = self._deliver(final)
        except Exception as exc:
            self._failed(exc)
            return
        self._succeeded()
        self.box.inbox.extend(commands)
        if final is not None:
            self.ended = True

    def _drain(self) -> None:
        """Move what the loop logged into the pending batch, converting values to floats."""
        box = self.box
        entries = box.entries
        points: list[tuple] = []
        while entries:
            step, values, ts = entries.popleft()
            if step is None:
                step = self.last_step + 1
            self.last_step = step
            self.heartbeat = max(self.heartbeat, ts)
            when = _utc(ts)
            for name, value in values.items():
                number = self._number(name, value)
                if number is not None:
                    points.append((int(step), name, number, when))
        overflow = len(self.points) + len(points) - self.points.maxlen
        if overflow > 0:
            self.dropped += overflow
        self.points.extend(points)
        while box.events:
            self.events.append(box.events.popleft())
        while box.acks:
            self.acks.append(box.acks.popleft())
        if box.progress is not None:
            self.heartbeat = max(self.heartbeat, box.progress[3])
        if box.expect_at is not None:
            self.heartbeat = max(self.heartbeat, box.expect_at)

    def _number(self, name: str, value: Any) -> float | None:
        try:
            return float(value)  # tensors and numpy scalars convert here, off the loop
        except (TypeError, ValueError, RuntimeError):
            if name not in self.bad_names:
                self.bad_names.add(name)
                kind = type(value).__name__
                text = f"metric {name!r} is not a single number ({kind}); it is not recorded"
                self.events.append((time.time(), "warning", text))
            return None

    def _deliver(self, final: dict[str, Any] | None) -> list:
        from steward.training.client import Command

        now = db.utcnow()
        if self.run_id is None:
            store.ensure_schema(self.engine)
        with self.engine.begin() as conn:
            if self.run_id is None:
                run_id = store.register_run(conn, **self.registration)
            else:
                run_id = self.run_id
            store.add_metrics(conn, run_id, list(self.points))
            if self.dropped and self.failures:
                self.events.append(
                    (
                        time.time(),
                        "warning",
                        f"{self.dropped} metric points were dropped while the store "
                        "was unreachable (the oldest go first)",
                    )
                )
            store.add_events(conn, run_id, [(_utc(t), level, msg) for t, level, msg in self.events])
            for command_id, ok, message, ts in self.acks:
                store.ack_command(conn, command_id, ok=ok, message=message, at=_utc(ts))
            box = self.box
            progress = None
            if box.progress is not None:
                progress = _progress_json(box.progress)
            heartbeat = _utc(self.heartbeat) if self.heartbeat > self.sent_heartbeat else None
            machine = self._sample(final is not None)
            expect = _utc(box.expect_until) if box.expect_until else None
            store.touch_run(
                conn,
                run_id,
                seen_at=now,
                last_heartbeat_at=heartbeat,
                progress=progress,
                expect_until=expect,
                system=machine,
            )
            rows = [] if final else store.take_commands(conn, run_id, now)
            if final is not None:
                store.end_run(conn, run_id, at=now, **final)
        if self.run_id is None:
            self.run_id = run_id
            self.on_registered(run_id)
        self.sent_heartbeat = max(self.sent_heartbeat, self.heartbeat)
        return [Command(r.id, r.kind, dict(r.argument or {}), r.created_at) for r in rows]

    def _sample(self, ending: bool) -> dict[str, Any] | None:
        """A new sample of the machine every SAMPLE_EVERY seconds and at the end (a crash
        report shows the memory at the crash); None in between."""
        now = time.monotonic()
        if not ending and now - self.sampled_at < system.SAMPLE_EVERY:
            return None
        self.sampled_at = now
        try:
            return system.sample() or None
        except Exception:  # the machine's numbers are a nicety; delivery is not
            log.debug("training client: could not sample the machine", exc_info=True)
            return None

    def _succeeded(self) -> None:
        if self.failures:
            log.info(
                "training run %s: the store is reachable again; delivered %d points, %d dropped",
                self.run_id,
                len(self.points),
                self.dropped,
            )
        self.points.clear()
        self.events.clear()
        self.acks.clear()
        self.failures = 0
        self.dropped = 0
        self.delivered = True
        self.retry_at = 0.0

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.delivered = False
        delay = min(MAX_BACKOFF, 2.0 ** (self.failures - 1))
        self.retry_at = time.monotonic() + delay
        if not self.warned:
            self.warned = True
            log.warning(
                "training run %r: the store %s is unreachable (%s); training continues, the "
                "newest %d points are kept and delivery is retried",
                self.registration["name"],
                db.describe(self.engine),
                _short(exc),
                self.points.maxlen,
            )
        else:
            log.debug("training store still unreachable: %s", _short(exc))
