"""`python bot.py check`: run every check once, print a table, exit 1 if any is bad."""

from __future__ import annotations

import asyncio
import sys

from steward.config import EXIT_CONFIG, Settings
from steward.monitoring.alerts import BAD, Sample
from steward.monitoring.checks import Runner, check_functions
from steward.monitoring.messages import render_table
from steward.monitoring.redact import redact
from steward.monitoring.spec import ChecksError, CheckSpec, load_checks


def run_checks_once(settings: Settings) -> tuple[str, int]:
    """The table of one run of every check, and the exit status (1 when any check is bad)."""
    specs = load_checks(settings.checks, settings.checks_file)
    if not specs:
        return "No checks are configured: set CHECKS or CHECKS_FILE.", 0
    check_functions(specs)
    samples = asyncio.run(_run(specs))
    status = 1 if any(s.status == BAD for s in samples) else 0
    return render_table(samples, {s.name: s for s in specs}), status


async def _run(specs: list[CheckSpec]) -> list[Sample]:
    runner = Runner()
    try:
        return await runner.run(specs)
    finally:
        await runner.aclose()


def run_check(settings: Settings) -> int:
    try:
        table, status = run_checks_once(settings)
    except ChecksError as exc:
        print(redact(f"CHECKS {exc}"), file=sys.stderr)
        return EXIT_CONFIG
    print(table)
    return status
