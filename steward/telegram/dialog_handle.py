"""The handle a dialog coroutine receives (`Dialog`) and one replay of it against its log.

How replay works and the rules for people writing dialogs: dialogs.py.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from steward import db
from steward.telegram.dialog_answers import Answer, Validator, check_answer, choice_buttons
from steward.telegram.dialog_values import from_log, to_log
from steward.telegram.formatting import esc


class _Suspend(BaseException):
    """Unwinds the coroutine at an unanswered question (BaseException: `except Exception` in a
    dialog must not swallow it)."""


class _LostRace(BaseException):
    """Another process advanced the dialog first; read it again and replay."""


class _EffectUnfinished(BaseException):
    """The log holds a side effect that was claimed but whose result is not recorded: another
    process is running it, or one died while running it."""

    def __init__(self, claimed_at: dt.datetime) -> None:
        super().__init__(claimed_at)
        self.claimed_at = claimed_at


class DialogChanged(Exception):
    """The replay no longer matches the stored log: the dialog's code changed."""


@dataclass
class _Output:
    text: str
    buttons: list[list[tuple[str, str]]] | None = None


@dataclass
class _Run:
    """One replay of a dialog's coroutine against its log."""

    row: dict
    log: list[dict]
    default_timeout: float
    cursor: int = 0
    question: int = 0
    outputs: list[_Output] = field(default_factory=list)
    timeout: float | None = None
    checkpoint: Callable[[], Awaitable[bool]] | None = None
    now: dt.datetime = field(default_factory=db.utcnow)

    @property
    def live(self) -> bool:
        return self.cursor >= len(self.log)

    def next_entry(self) -> dict | None:
        if self.cursor >= len(self.log):
            return None
        entry = self.log[self.cursor]
        self.cursor += 1
        return entry


class Dialog:
    """The handle a dialog coroutine receives."""

    def __init__(self, run: _Run) -> None:
        self._run = run
        self.chat_id: str = run.row["chat_id"]
        self.user_id: int = run.row["user_id"]
        self.args: list[str] = list(run.row["args"])

    async def ask(
        self,
        text: str,
        *,
        choices: Sequence[str] | None = None,
        validate: Validator | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send `text` (HTML) and return the answer: a choice, or what `validate` returns."""
        return self._await_answer(text, choices=choices, validate=validate, timeout=timeout)

    async def wait_for_photo(self, text: str, *, timeout: float | None = None) -> Answer:
        """Ask for a photo; returns the Answer with its file_id and caption."""

        def photo(answer: Answer) -> Answer:
            if not answer.photo:
                raise ValueError("Please send a photo.")
            return answer

        return self._await_answer(text, raw=photo, timeout=timeout)

    async def say(self, text: str) -> None:
        """Send `text` (HTML) once: skipped when replaying."""
        if self._run.live:
            self._run.outputs.append(_Output(text))

    async def once(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a side effect at most once across replays and processes; its result is logged.

        The effect is claimed first (a log entry written under the row's version), then run:
        of two workers handling answers for one chat, only the one whose claim lands runs it.
        The result may hold JSON values, datetimes, dates, times and timedeltas.
        """
        run = self._run
        entry = run.next_entry()
        if entry is not None:
            if "e" in entry:
                return from_log(entry["e"])
            if "c" in entry:
                raise _EffectUnfinished(dt.datetime.fromisoformat(entry["c"]))
            raise DialogChanged("a side effect stands where the log has an answer")
        run.log.append({"c": run.now.isoformat()})
        run.cursor = len(run.log)
        if run.checkpoint is None or not await run.checkpoint():
            raise _LostRace
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        run.log[-1] = {"e": to_log(result)}
        # Record the result at once: a crash later in this run must not lose it.
        if not await run.checkpoint():
            raise DialogChanged("another process advanced this dialog during a side effect")
        return from_log(run.log[-1]["e"])

    def _await_answer(self, text, *, choices=None, validate=None, raw=None, timeout=None):
        run = self._run
        run.question += 1
        buttons = choice_buttons(run.row["dialog_id"], run.question, choices)
        while True:
            entry = run.next_entry()
            if entry is None:  # the first question without an answer: ask it and wait
                run.outputs.append(_Output(text, buttons))
                run.timeout = timeout
                raise _Suspend
            if "a" not in entry:
                raise DialogChanged("an answer stands where the log has a side effect")
            answer = Answer.from_json(entry["a"])
            try:
                return check_answer(answer, choices, validate, raw)
            except ValueError as exc:
                if run.live:  # the answer just received: explain and ask again
                    run.outputs.append(_Output(f"{esc(exc)}\n\n{text}", buttons))
                    run.timeout = timeout
                    raise _Suspend from None
                # an old rejected answer: it was explained back then; skip it
