"""The /watch and /unwatch conversations: add a check step by step, remove one with a confirm.

Every answer is checked by the same rules as CHECKS (spec.py), built into the check as it grows,
so what /watch stores is exactly what a CHECKS entry with those options would be. The code
between questions is deterministic (steward/telegram/dialogs.py replays it): the store is read
and written only through `d.once`.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from steward.monitoring import watched
from steward.monitoring.messages import describe
from steward.monitoring.options import ChecksError
from steward.monitoring.spec import CheckSpec, build, parse_target
from steward.telegram.formatting import esc
from steward.timeutil import human

if TYPE_CHECKING:
    from steward.monitoring.monitor import Monitor
    from steward.telegram.dialogs import Dialog

VERSION = 1  # bump when a question changes (open dialogs then end with an apology)
LABEL = "this check"
DRAFT = "new"  # the name a check has until it is given one (validation needs a name)
KIND_QUESTION = (
    "What should I watch?\n"
    "<b>http</b>: a URL answers with a good status\n"
    "<b>tcp</b>: a port accepts connections\n"
    "<b>evm_lag</b>: an EVM node keeps up with reference nodes"
)
TARGET_QUESTION = {
    "http": "Which URL? For example https://example.com/health (a status 200-399 is good).",
    "tcp": "Which host and port? For example db.internal:5432.",
    "evm_lag": (
        "Which node, and which reference nodes of the same chain? "
        "For example https://node|https://ref1,https://ref2."
    ),
}
THRESHOLD_QUESTION = {
    "http": (
        "Alert when a response takes longer than how many ms? "
        "For example 800, or <i>status only</i> to judge by the status code alone."
    ),
    "tcp": (
        "Alert when connecting takes longer than how many ms? "
        "For example 500, or <i>skip</i> to alert only when it fails."
    ),
    "evm_lag": (
        "Alert when the node is more than how many blocks behind? "
        "For example 10, or <i>skip</i> to alert only when it fails or stalls."
    ),
}
SKIP = {"skip", "status only", "status"}
INTERVAL_QUESTION = "How often should I check? For example 30s, 1m or 5m."
NAME_QUESTION = (
    "What shall I call it? 1-64 letters, digits, '_', '-' or '.', for example <i>api</i>."
)
ADD, CANCEL, REMOVE, KEEP = "Add", "Cancel", "Remove", "Keep"


def _sentence(exc: Exception) -> str:
    text = str(exc).rstrip(".")
    return f"{text[:1].upper()}{text[1:]}."


def _built(raw: dict[str, Any]) -> CheckSpec:
    try:
        return build(raw, label=LABEL)
    except ChecksError as exc:
        raise ValueError(_sentence(exc)) from None


def target(kind: str, text: str) -> dict[str, Any]:
    """The target's options (url, host and port, references), checked as CHECKS checks them."""
    try:
        return parse_target(kind, text, LABEL)
    except ChecksError as exc:
        raise ValueError(_sentence(exc)) from None


def threshold(raw: dict[str, Any], text: str) -> dict[str, Any]:
    """`{"alert_above": n}`, or nothing for skip (and "status only" for http)."""
    if text.strip().casefold() in SKIP:
        return {}
    high = _built({**raw, "alert_above": text.strip()}).rules.alert_above
    if high is None or high <= 0:
        raise ValueError("Please send a number above 0, or skip.")
    return {"alert_above": high}


def interval(raw: dict[str, Any], text: str) -> dict[str, Any]:
    """`{"interval": seconds}`, between one watched-checks cadence and a day."""
    seconds = _built({**raw, "interval": text.strip()}).interval or 0
    shortest, longest = watched.SHORTEST, watched.LONGEST
    if not shortest.total_seconds() <= seconds <= longest.total_seconds():
        raise ValueError(
            f"Please choose between {human(shortest)} and {human(longest)}, for example 1m."
        )
    return {"interval": seconds}


def name(raw: dict[str, Any], configured: set[str], text: str) -> str:
    """A valid name not taken by a configured check (watched names are checked in the store)."""
    spec = _built({**raw, "name": text.strip()})
    if spec.name in configured:
        raise ValueError(f"{spec.name} is a check from CHECKS already; please choose another name.")
    return spec.name


def build_dialogs(monitor: Monitor) -> list[tuple[str, Any, int]]:
    """The feature's dialogs: (name, coroutine function, version)."""
    configured = set(monitor.configured)
    default_interval = monitor.settings.check_interval

    async def name_problem(candidate: str) -> str | None:
        return await asyncio.to_thread(watched.name_problem, monitor.engine, candidate, configured)

    async def add(options: dict, chat_id: str, user_id: int) -> str | None:
        return await asyncio.to_thread(monitor.add_watched, options, chat_id, user_id)

    async def remove(check: str) -> bool:
        return await asyncio.to_thread(monitor.remove_watched, check)

    async def watch(d: Dialog) -> None:
        kind = await d.ask(KIND_QUESTION, choices=list(watched.KINDS))
        raw: dict[str, Any] = {"name": DRAFT, "kind": kind}
        raw |= await d.ask(TARGET_QUESTION[kind], validate=lambda text: target(kind, text))
        raw |= await d.ask(THRESHOLD_QUESTION[kind], validate=lambda text: threshold(raw, text))
        raw |= await d.ask(INTERVAL_QUESTION, validate=lambda text: interval(raw, text))
        question = NAME_QUESTION
        while True:
            raw["name"] = await d.ask(question, validate=lambda text: name(raw, configured, text))
            problem = await d.once(name_problem, raw["name"])
            if problem is None:
                break
            question = f"{esc(problem)} Please choose another.\n\n{NAME_QUESTION}"
        spec = build(raw)
        summary = describe(spec, default_interval)
        if await d.ask(f"Add this check?\n{summary}", choices=[ADD, CANCEL]) == CANCEL:
            await d.say("Nothing was added.")
            return
        problem = await d.once(add, raw, d.chat_id, d.user_id)
        if problem is not None:
            await d.say(f"{esc(problem)} Nothing was added; start again with /watch.")
            return
        first = human(watched.CADENCE)
        await d.say(
            f"Added {summary}.\nIts first sample comes within {esc(first)}: see /checks. "
            f"/unwatch {esc(spec.name)} removes it."
        )

    async def unwatch(d: Dialog) -> None:
        check = d.args[0]
        shown = f"<b>{esc(check)}</b>"
        question = f"Remove {shown}? It stops being checked, and its samples are deleted."
        if await d.ask(question, choices=[REMOVE, KEEP]) == KEEP:
            await d.say(f"{shown} stays.")
            return
        if await d.once(remove, check):
            await d.say(f"Removed {shown}.")
        else:
            await d.say(f"{shown} was already gone.")

    return [("watch", watch, VERSION), ("unwatch", unwatch, VERSION)]
