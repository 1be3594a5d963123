"""The monitoring service: run the checks, store the samples, step the alerts, announce.

A tick's events become at most one new message (a chart of the checks that went down, with
every alert in its caption; past ALERT_PANELS checks the rest follow as text) plus one reply per
earlier alert that ended. The chart is drawn first, from the store and this tick's samples; then
ONE transaction writes the samples, moves each alert state by a conditional update and inserts
the outbox rows that announce the moves. A stop or a failed insert thus leaves either both or
neither, never "announced" with no message; only the winner of a race announces, under an
idempotent outbox key. A check going down (or becoming impossible to evaluate) is urgent: it
gets through a chat's /mute. The feature's wiring (jobs, commands) is in job.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from steward.features import Services
from steward.monitoring import charts, store, watched
from steward.monitoring.alerts import (
    ALERTING,
    UNKNOWN,
    AlertState,
    Event,
    Sample,
    judge,
    step,
)
from steward.monitoring.checks import Runner
from steward.monitoring.maintenance import active_until
from steward.monitoring.messages import render_events
from steward.monitoring.spec import CheckSpec

if TYPE_CHECKING:
    from steward.monitoring.shared import SharedChecks

log = logging.getLogger("steward.monitoring")
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)
OPENING = ("alert", "still_down", "unknown")  # events that start (or repeat) a thread
URGENT = ("alert", "unknown")  # worth waking someone for, even in a muted chat
NO_CHECKS = "no checks yet: set CHECKS or use /watch"
# Panels in one alert chart: 6 x 260 px stays far inside Telegram's photo limits (width + height
# <= 10,000 px, ratio <= 20); the other checks are in the caption.
ALERT_PANELS = 6
ALL = 10**9  # no cut: the sender splits long texts and cuts long captions


@dataclasses.dataclass(frozen=True)
class Plan:
    """A tick's samples (judged against their bands), state steps and events, before writing."""

    samples: list[Sample]
    steps: list[tuple[AlertState, AlertState]]
    events: list[Event]
    opening: list[Event]
    merged: str | None


def message_key(events: Sequence[Event], prefix: str) -> str:
    """The outbox key of a message for these events: the event's own key when alone."""
    if len(events) == 1:
        return events[0].key
    digest = hashlib.sha256("\n".join(sorted(e.key for e in events)).encode()).hexdigest()
    return f"{prefix}:{events[0].at.isoformat()}:{digest[:16]}"


class Monitor:
    """The live monitoring feature: its checks, the runner, and what a tick does."""

    def __init__(self, services: Services, specs: Sequence[CheckSpec]) -> None:
        self.services = services
        self.settings = services.settings
        self.engine = services.engine
        self.clock = services.clock
        self.configured = {spec.name: spec for spec in specs}
        # The checks added with /watch, as last read from the store (refresh()).
        self.watched: dict[str, CheckSpec] = {}
        self.runner = Runner(clock=services.clock)
        self._quiet: set[str] = set()
        # On Postgres the checks are units of work (shared.py): /watch and /unwatch keep the
        # watched checks' units in step through it.
        self.units: SharedChecks | None = None

    @property
    def specs(self) -> dict[str, CheckSpec]:
        """Every check by name: the configured ones, then the watched ones."""
        return {**self.configured, **self.watched}

    def interval(self, spec: CheckSpec) -> int:
        return spec.interval or self.settings.check_interval

    def groups(self) -> dict[int, list[CheckSpec]]:
        out: dict[int, list[CheckSpec]] = defaultdict(list)
        for spec in self.configured.values():
            out[self.interval(spec)].append(spec)
        return dict(sorted(out.items()))

    def summary(self) -> str:
        parts = []
        if self.configured:
            kinds = sorted({s.kind for s in self.configured.values()})
            every = ", ".join(f"{n}s" for n in self.groups())
            parts.append(f"{len(self.configured)} checks ({', '.join(kinds)}) every {every}")
        if self.watched:
            parts.append(f"{len(self.watched)} added with /watch")
        return "; ".join(parts) or NO_CHECKS

    # -- watched checks ------------------------------------------------------------------

    def load_watched(self) -> dict[str, CheckSpec]:
        return watched.load(self.engine, self.configured, self._quiet)

    async def refresh(self) -> dict[str, CheckSpec]:
        """Read the watched checks again (another worker or a dialog may have changed them)."""
        self.watched = await asyncio.to_thread(self.load_watched)
        return self.watched

    def add_watched(self, options: dict, chat_id: str | None, user_id: int | None) -> str | None:
        """Store a check from /watch (call in a thread); None, or why it was not added."""
        problem = watched.add(
            self.engine,
            options,
            self.configured,
            chat_id,
            user_id,
            self.clock(),
            allow_private=self.settings.checks_allow_private,
        )
        if problem is None and self.units is not None:
            self.units.refresh()  # its unit, due at once for any worker
        elif problem is None:
            self.watched = self.load_watched()
        return problem

    def remove_watched(self, name: str) -> bool:
        """Forget a check added with /watch (call in a thread); False when there was none."""
        also = None
        if self.units is not None:
            from steward.monitoring.shared import drop_watched

            also = functools.partial(drop_watched, name=name)  # no worker samples it again
        removed = store.remove_watched(self.engine, name, also=also)
        self.watched.pop(name, None)
        return removed

    async def watched_tick(self, scheduled_at: dt.datetime) -> list[Event]:
        """Run the watched checks that are due at `scheduled_at` (SQLite's job; on Postgres
        they are units of work, shared.py)."""
        specs = list((await self.refresh()).values())
        if not specs:
            return []
        states = await asyncio.to_thread(store.load_states, self.engine, [s.name for s in specs])
        due = watched.due(specs, states, scheduled_at, self.settings.check_interval)
        return await self.tick(due, scheduled_at) if due else []

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.refresh()
        await asyncio.to_thread(self._remember_heights)

    def _remember_heights(self) -> None:
        # A node's "unchanged since" must survive a restart, or a stall would be noticed late.
        for spec in self.specs.values():
            if spec.kind != "evm_lag":
                continue
            last = store.last_sample(self.engine, spec.name)
            if last and "height" in last.details and "height_since" in last.details:
                since = dt.datetime.fromisoformat(last.details["height_since"])
                self.runner.heights[spec.name] = (int(last.details["height"]), since)

    async def stop(self) -> None:
        await self.runner.aclose()

    # -- a tick --------------------------------------------------------------------------

    async def tick(self, specs: Sequence[CheckSpec], scheduled_at: dt.datetime | None = None):
        """Run the checks once; store, step and announce in one transaction; returns the
        events announced."""
        samples = await self.runner.run(specs)
        ran = {spec.name: spec for spec in specs}
        every = {**self.specs, **ran}
        plan = await asyncio.to_thread(self._plan, samples, ran)
        photo = None
        if plan.opening:
            # Drawn before the transaction (it is slow), from the store and this tick's samples.
            photo = await asyncio.to_thread(self._alert_chart, plan.opening, every, plan.samples)
        events = await asyncio.to_thread(self._commit, plan, every, photo)
        if events:
            self.services.outbox.wake()
        bad = sum(s.status == "bad" for s in plan.samples)
        log.info("checked %d (%d bad), %d events", len(plan.samples), bad, len(events))
        return events

    def _plan(self, samples: Sequence[Sample], specs: dict[str, CheckSpec]) -> Plan:
        """Each check's step from its stored state (nothing written yet)."""
        now = self.clock()
        states = store.load_states(self.engine, [s.check for s in samples])
        # The runner judged each value against its band; held bands (hysteresis) are known here.
        samples = [judge(s, specs[s.check].rules, states[s.check].band) for s in samples]
        steps, events = [], []
        for sample in samples:
            old = states[sample.check]
            new, produced = step(self._in_window(old, specs[sample.check], now), sample,
                                 specs[sample.check].rules, now)  # fmt: skip
            new = dataclasses.replace(new, muted_until=old.muted_until)  # the window is not stored
            steps.append((old, new))
            events += produced
        # The alerts of this tick go out as one message: each check's recovery must reply to
        # that message, so its key is what the states remember.
        opening = [e for e in events if e.kind in OPENING]
        merged = message_key(opening, "alerts") if opening else None
        said = {e.check for e in opening if e.kind in ("alert", "unknown")}
        steps = [
            (old, dataclasses.replace(new, alert_key=merged) if new.check in said else new)
            for old, new in steps
        ]
        return Plan(samples, steps, events, opening, merged)

    def _in_window(self, state: AlertState, spec: CheckSpec, now: dt.datetime) -> AlertState:
        """The state as muted until the end of a maintenance window `now` is in."""
        until = active_until(spec.maintenance, now, self.settings.tz) if spec.maintenance else None
        if until is None or (state.muted_until is not None and state.muted_until >= until):
            return state
        return dataclasses.replace(state, muted_until=until)

    def _commit(self, plan: Plan, specs: dict[str, CheckSpec], photo: bytes | None) -> list[Event]:
        """Samples, state steps and the messages announcing them: one transaction."""
        with self.engine.begin() as conn:
            won = store.record_in(conn, plan.samples, plan.steps, self.clock())
            lost = {s.check for s in plan.samples} - won
            if lost:
                log.info("alert state moved elsewhere meanwhile, not announcing: %s", sorted(lost))
            events = [e for e in plan.events if e.check in won]
            opening = [e for e in plan.opening if e.check in won]
            if len(opening) != len(plan.opening):
                photo = None  # drawn for checks some of which another worker announces
            self._write_messages(conn, events, opening, plan.merged, specs, photo)
        return events

    def _write_messages(
        self,
        conn,
        events: list[Event],
        opening: list[Event],
        key: str | None,
        specs: dict[str, CheckSpec],
        photo: bytes | None,
    ) -> None:
        tz, outbox = self.settings.tz, self.services.outbox

        def write(text: str | None = None, **kwargs) -> None:
            if outbox.notify_in(conn, text, **kwargs) is None:
                # The insert failed and was swallowed: the whole step must roll back, or the
                # alert would stay "announced" with no message.
                raise RuntimeError(f"the outbox refused the message {kwargs.get('key')!r}")

        if opening:
            # Every event is listed: a caption past Telegram's 1,024 characters is cut by the
            # sender and its rest follows the photo as text.
            caption = render_events(opening, specs, tz, limit=ALL)
            # Recoveries and reminders can wait out a mute; news of a check going down cannot.
            urgent = any(e.kind in URGENT for e in opening)
            if photo is not None:
                write(photo=photo, caption=caption, key=key, urgent=urgent)
            else:
                write(caption, key=key, urgent=urgent)
        threads: dict[str | None, list[Event]] = defaultdict(list)
        for event in events:
            if event.kind not in OPENING:
                threads[event.reply_to].append(event)
        for reply_to, group in threads.items():
            text = render_events(group, specs, tz, limit=ALL)
            write(text, key=message_key(group, "recovered"), reply_to=reply_to)

    def _alert_chart(
        self, events: Sequence[Event], specs: dict[str, CheckSpec], recent: Sequence[Sample]
    ) -> bytes | None:
        names = list(dict.fromkeys(e.check for e in events))
        shown = [specs[name] for name in names[:ALERT_PANELS]]
        hours = int(charts.ALERT_WINDOW.total_seconds() // 3600)
        title = f"last {hours} hours"
        if len(names) > len(shown):
            title += f", {len(shown)} of {len(names)} checks"
        try:
            return charts.render(
                self.engine,
                shown,
                charts.ALERT_WINDOW,
                self.clock(),
                self.settings.tz,
                title=title,
                recent=recent,
            )
        except Exception:
            # A chart is a nicety; the alert must go out without it.
            log.exception("could not draw the alert chart; sending the alert as text")
            return None

    async def housekeeping(self, scheduled_at: dt.datetime | None = None) -> None:
        now = self.clock()
        days = self.settings.samples_retention_days
        # Roll up first (a backlog in bounded steps): cleanup keeps what is not rolled up yet.
        hours = step_hours = store.ROLLUP_HOURS_PER_RUN
        while step_hours == store.ROLLUP_HOURS_PER_RUN:
            step_hours = await asyncio.to_thread(store.roll_up, self.engine, now)
            hours += step_hours
        hours -= store.ROLLUP_HOURS_PER_RUN
        gone = await asyncio.to_thread(store.cleanup, self.engine, now, days)
        log.info("samples: %d hours rolled up, %d past %d days dropped", hours, gone, days)

    # -- status --------------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        added = self.load_watched()
        states = store.load_states(self.engine, [*self.configured, *added])
        down = sorted(n for n, s in states.items() if s.state == ALERTING)
        blind = sorted(n for n, s in states.items() if s.state == UNKNOWN)
        line = f"monitoring: {len(self.configured) + len(added)} checks"
        line += f" ({len(added)} added with /watch)" if added else ""
        line += f", down: {', '.join(down)}" if down else ", none down"
        if blind:
            line += f", cannot evaluate: {', '.join(blind)}"
        return [line]
