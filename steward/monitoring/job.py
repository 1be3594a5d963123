"""Monitoring's scheduled work: run the checks, store the samples, step the alerts, announce.

One job per check interval runs that group of configured checks; one job every few seconds runs
the checks added with /watch that are due (watched.py); one hourly job drops old samples and
rolls up the hours that ended. A tick's events become at most one new message (a chart of the checks
that went down, with every alert in its caption) plus one reply per earlier alert that ended.
The state step is stored first, by a conditional update; only the winner announces, under an
idempotent outbox key, so neither a restart nor a second worker says anything twice. A check
going down (or becoming impossible to evaluate) is urgent: it gets through a chat's /mute.
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

from steward.config import ConfigError
from steward.features import Feature, Job, Services
from steward.monitoring import charts, store, watched
from steward.monitoring.alerts import ALERTING, UNKNOWN, Event, judge, step
from steward.monitoring.checks import Runner, check_functions
from steward.monitoring.messages import render_events
from steward.monitoring.options import ChecksError
from steward.monitoring.redact import redact
from steward.monitoring.spec import CheckSpec, load_checks
from steward.telegram.formatting import TEXT_LIMIT

log = logging.getLogger("steward.monitoring")
HOUSEKEEPING_EVERY = dt.timedelta(hours=1)
OPENING = ("alert", "still_down", "unknown")  # events that start (or repeat) a thread
URGENT = ("alert", "unknown")  # worth waking someone for, even in a muted chat
NO_CHECKS = "no checks yet: set CHECKS or use /watch"


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
        problem = watched.add(self.engine, options, self.configured, chat_id, user_id, self.clock())
        if problem is None:
            self.watched = self.load_watched()
        return problem

    def remove_watched(self, name: str) -> bool:
        """Forget a check added with /watch (call in a thread); False when there was none."""
        removed = store.remove_watched(self.engine, name)
        self.watched.pop(name, None)
        return removed

    async def watched_tick(self, scheduled_at: dt.datetime) -> list[Event]:
        """Run the watched checks that are due at `scheduled_at`."""
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
        """Run the checks once, store and step, announce; returns the events announced."""
        samples = await self.runner.run(specs)
        ran = {spec.name: spec for spec in specs}
        samples, events = await asyncio.to_thread(self._record, samples, ran)
        if events:
            await self._announce(events, {**self.specs, **ran})
        bad = sum(s.status == "bad" for s in samples)
        log.info("checked %d (%d bad), %d events", len(samples), bad, len(events))
        return events

    def _record(self, samples, specs: dict[str, CheckSpec]) -> tuple[list, list[Event]]:
        now = self.clock()
        states = store.load_states(self.engine, [s.check for s in samples])
        # The runner judged each value against its band; held bands (hysteresis) are known here.
        samples = [judge(s, specs[s.check].rules, states[s.check].band) for s in samples]
        steps, events = [], []
        for sample in samples:
            old = states[sample.check]
            new, produced = step(old, sample, specs[sample.check].rules, now)
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
        won = store.record(self.engine, samples, steps, now)
        lost = {s.check for s in samples} - won
        if lost:
            log.info("alert state moved elsewhere meanwhile, not announcing: %s", sorted(lost))
        return samples, [e for e in events if e.check in won]

    async def _announce(self, events: list[Event], specs: dict[str, CheckSpec]) -> None:
        tz, outbox = self.settings.tz, self.services.outbox
        opening = [e for e in events if e.kind in OPENING]
        if opening:
            key = message_key(opening, "alerts")
            caption = render_events(opening, specs, tz)
            # Recoveries and reminders can wait out a mute; news of a check going down cannot.
            urgent = any(e.kind in URGENT for e in opening)
            photo = await asyncio.to_thread(self._alert_chart, opening, specs)
            if photo is not None:
                await outbox.anotify(photo=photo, caption=caption, key=key, urgent=urgent)
            else:
                await outbox.anotify(caption, key=key, urgent=urgent)
        threads: dict[str | None, list[Event]] = defaultdict(list)
        for event in events:
            if event.kind not in OPENING:
                threads[event.reply_to].append(event)
        for reply_to, group in threads.items():
            text = render_events(group, specs, tz, limit=TEXT_LIMIT)
            key = message_key(group, "recovered")
            await outbox.anotify(text, key=key, reply_to=reply_to)

    def _alert_chart(self, events: Sequence[Event], specs: dict[str, CheckSpec]) -> bytes | None:
        shown = [specs[name] for name in dict.fromkeys(e.check for e in events)]
        try:
            return charts.render(
                self.engine,
                shown,
                charts.ALERT_WINDOW,
                self.clock(),
                self.settings.tz,
                title=f"last {int(charts.ALERT_WINDOW.total_seconds() // 3600)} hours",
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


def build_feature(services: Services) -> Feature:
    settings = services.settings
    try:
        specs = load_checks(settings.checks, settings.checks_file)
        check_functions(specs)
    except ChecksError as exc:
        variable = "CHECKS_FILE" if settings.checks_file and not settings.checks else "CHECKS"
        raise ConfigError(variable, redact(f"is not valid: {exc}")) from None
    from steward.monitoring import commands, dialogs

    # On even without CHECKS: /watch adds checks while the worker runs.
    monitor = Monitor(services, specs)
    jobs = [
        Job(f"monitoring.every_{seconds}s", dt.timedelta(seconds=seconds), _tick(monitor, group))
        for seconds, group in monitor.groups().items()
    ]
    jobs.append(Job("monitoring.watched", watched.CADENCE, monitor.watched_tick))
    jobs.append(Job("monitoring.housekeeping", HOUSEKEEPING_EVERY, monitor.housekeeping))
    services.extra["monitoring.mute"] = functools.partial(commands.mute_check, monitor)
    services.extra["monitoring.unmute"] = functools.partial(commands.unmute_check, monitor)

    async def start() -> None:
        await monitor.start()
        feature.summary = monitor.summary()  # the watched checks are known only now

    feature = Feature(
        "monitoring",
        True,
        monitor.summary(),
        commands=commands.build(monitor),
        jobs=jobs,
        dialogs=dialogs.build_dialogs(monitor),
        start=start,
        stop=monitor.stop,
        status=monitor.status_lines,
    )
    return feature


def _tick(monitor: Monitor, group: list[CheckSpec]):
    async def tick(scheduled_at: dt.datetime) -> None:
        await monitor.tick(group, scheduled_at)

    return tick
