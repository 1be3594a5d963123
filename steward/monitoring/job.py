"""Monitoring's feature wiring: the jobs, commands and dialogs around the Monitor service.

On SQLite one job per check interval runs that group of configured checks, and one job every
few seconds runs the checks added with /watch that are due (watched.py). On Postgres the
workers share both as units of work instead (shared.py). One hourly job drops old samples and
rolls up the hours that ended.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib

from steward.config import ConfigError
from steward.features import Feature, Job, Services
from steward.monitoring import commands, dialogs, watched
from steward.monitoring.checks import check_functions
from steward.monitoring.monitor import HOUSEKEEPING_EVERY, Monitor
from steward.monitoring.options import ChecksError
from steward.monitoring.redact import redact
from steward.monitoring.shared import SharedChecks
from steward.monitoring.spec import CheckSpec, load_checks


def build_feature(services: Services) -> Feature:
    settings = services.settings
    try:
        specs = load_checks(settings.checks, settings.checks_file)
        check_functions(specs)
    except ChecksError as exc:
        variable = "CHECKS_FILE" if settings.checks_file and not settings.checks else "CHECKS"
        raise ConfigError(variable, redact(f"is not valid: {exc}")) from None
    # On even without CHECKS: /watch adds checks while the worker runs.
    monitor = Monitor(services, specs)
    # On Postgres the checks, configured and watched, are units of work any worker claims
    # (shared.py), so N workers split them; on SQLite one job per interval runs its group of
    # configured checks, and one job the watched checks, on the one worker.
    shared = SharedChecks(monitor, specs) if services.engine.dialect.name == "postgresql" else None
    jobs = [
        Job(group_job_name(seconds, group), dt.timedelta(seconds=seconds), _tick(monitor, group))
        for seconds, group in monitor.groups().items()
        if shared is None
    ]
    if shared is None:
        jobs.append(Job("monitoring.watched", watched.CADENCE, monitor.watched_tick))
    jobs.append(Job("monitoring.housekeeping", HOUSEKEEPING_EVERY, monitor.housekeeping))
    services.mute_check = functools.partial(commands.mute_check, monitor)
    services.unmute_check = functools.partial(commands.unmute_check, monitor)

    async def start() -> None:
        await monitor.start()
        feature.summary = monitor.summary()  # the watched checks are known only now
        if shared is not None:
            await shared.start()

    def status() -> list[str]:
        lines = monitor.status_lines()
        if shared is not None:
            lines.append(f"checks shared with the other workers: this one took {shared.done}")
        return lines

    async def stop() -> None:
        if shared is not None:
            await shared.stop()
        await monitor.stop()

    feature = Feature(
        "monitoring",
        True,
        monitor.summary(),
        commands=commands.build(monitor),
        jobs=jobs,
        dialogs=dialogs.build_dialogs(monitor),
        start=start,
        stop=stop,
        status=status,
    )
    return feature


def group_job_name(seconds: int, group: list[CheckSpec]) -> str:
    """The job of one group of configured checks, named after what it runs: two workers with
    different CHECKS (a deploy's overlap) get different jobs, so neither's tick claim can stand
    for the other's checks; workers with the same CHECKS share one job and claim each tick once."""
    digest = hashlib.sha256(repr(sorted(group, key=lambda s: s.name)).encode()).hexdigest()
    return f"monitoring.every_{seconds}s.{digest[:10]}"


def _tick(monitor: Monitor, group: list[CheckSpec]):
    async def tick(scheduled_at: dt.datetime) -> None:
        await monitor.tick(group, scheduled_at)

    return tick
