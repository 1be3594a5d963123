"""Dialogs written as coroutines that survive restarts and move between worker processes.

A dialog is an `async def` that receives a handle and asks and awaits:

    async def rename(d: Dialog) -> None:
        name = await d.ask("New name?", validate=non_empty)
        if await d.ask(f"Rename to {name}?", choices=["Yes", "No"]) == "Yes":
            await d.once(store_name, name)          # a side effect that must not repeat
            await d.say("Done.")

How it survives: no coroutine is kept between answers. Every answer (and every result of
`d.once`) is appended to a log stored in the `dialogs` table. When the next answer arrives, in
this process or another one sharing the database, the coroutine is run again from the top and
each `ask` returns the logged answer instead of waiting; `say` and `once` are skipped while
replaying (`once` returns its logged result). When the replay reaches the first question without
an answer, the question is sent and the run is abandoned until the next answer. So a dialog costs
one table row while it waits, a restart loses nothing, and side effects happen once.

The rules that follow (documented for people writing dialogs):
1. The code between questions must be deterministic given the answers: read clocks, random
   numbers and the database through `d.once(...)`, whose result is logged and replayed (JSON
   values, datetimes, dates, times and timedeltas). `once` claims its step in the store before
   it runs the effect, so of two workers answering one chat only one runs it; a worker that
   dies inside an effect leaves the dialog to end with an apology rather than repeat it.
2. One dialog per chat. While one is open, /cancel ends it, /help and /status still work, and any
   other command is answered "finish or /cancel first" rather than silently dropped.
3. Each question waits `timeout` seconds (default DIALOG_TIMEOUT); then the dialog ends with a
   message saying so.
4. An answer the validator rejects is answered with the validator's sentence and the question is
   asked again; the rejected answer stays in the log and is skipped on replay.
5. Bump `version` when a dialog's questions change. A dialog started under another version, or
   whose replay no longer matches its log, is ended with an apology instead of crashing.

What an answer is, how it is checked and how choices become buttons: dialog_answers.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db
from steward.features import Clock
from steward.telegram.dialog_answers import Answer
from steward.telegram.dialog_handle import (
    Dialog,
    DialogChanged,
    _EffectUnfinished,
    _LostRace,
    _Output,
    _Run,
    _Suspend,
)
from steward.telegram.dialog_store import dialogs
from steward.telegram.formatting import esc
from steward.telegram.store import outbox as outbox_table

log = logging.getLogger("steward.dialogs")

__all__ = ["Answer", "Dialog", "DialogChanged", "DialogEngine", "Spec"]

DialogFn = Callable[[Dialog], Awaitable[Any]]
SORRY_CHANGED = (
    "Sorry, this conversation was changed by an update since it started, so I had to end it. "
    "Please start it again."
)
SORRY_FAILED = "Sorry, something went wrong in this conversation, so I ended it. It was logged."
SORRY_INTERRUPTED = (
    "Sorry, this conversation stopped during a step that must not run twice, so I ended it. "
    "Please check whether that step took effect before you start it again."
)
# How long a claimed side effect may run before its dialog counts as interrupted.
EFFECT_GRACE = dt.timedelta(minutes=2)
ANSWER_ATTEMPTS = 8
ALLOWED_DURING = ("cancel", "help", "status")


@dataclass(frozen=True)
class Spec:
    name: str
    fn: DialogFn
    version: int = 1


class DialogEngine:
    """Starts dialogs, feeds them answers, cancels and expires them. Knows nothing of Telegram:
    its messages go through the outbox."""

    def __init__(
        self, engine: Engine, outbox, *, clock: Clock = db.utcnow, default_timeout: float = 600.0
    ) -> None:
        self.engine = engine
        self.outbox = outbox
        self.clock = clock
        self.default_timeout = default_timeout
        self.specs: dict[str, Spec] = {}

    def register(self, name: str, fn: DialogFn, *, version: int = 1) -> None:
        self.specs[name] = Spec(name, fn, version)

    # Reading ---------------------------------------------------------------------------------
    def open_dialog(self, chat_id: int | str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(dialogs).where(dialogs.c.chat_id == str(chat_id)))
            found = row.mappings().first()
        return dict(found) if found else None

    # Writing ---------------------------------------------------------------------------------
    async def start(self, name: str, chat_id: int | str, user_id: int, args=()) -> bool:
        """Open dialog `name` in the chat; False when one is already open there."""
        spec = self.specs[name]
        now = self.clock()
        row = {
            "chat_id": str(chat_id),
            "dialog_id": uuid.uuid4().hex[:16],
            "name": name,
            "code_version": spec.version,
            "user_id": user_id,
            "args": list(args),
            "log": [],
            "rev": 0,
            "question": 0,
            "expires_at": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await asyncio.to_thread(self._insert, row)
        except sa.exc.IntegrityError:
            return False
        log.info("dialog %s started in chat %s", name, chat_id)
        await self._advance(row, None)
        return True

    def _insert(self, row: dict) -> None:
        with self.engine.begin() as conn:
            conn.execute(dialogs.insert().values(**row))

    async def answer(self, chat_id: int | str, answer: Answer, *, question: int | None = None):
        """Feed an answer to the chat's open dialog. Returns False when none is open, or when a
        button belongs to a question that is no longer the open one."""
        for attempt in range(ANSWER_ATTEMPTS):
            if attempt:  # lost a race: the other writer (perhaps mid side effect) goes first
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
            row = await asyncio.to_thread(self.open_dialog, chat_id)
            if row is None:
                return False
            if question is not None and question != row["question"]:
                return False
            if _seen(row, answer):
                return True  # Telegram delivered this message again (after a crash): done already
            if row["expires_at"] is not None and row["expires_at"] <= self.clock():
                # Its question timed out before the sweep came by: close it as the sweep would.
                return await self._time_out(row)
            if await self._advance(row, answer, pressed=question is not None):
                return True
        log.warning("dialog in chat %s: gave up after repeated concurrent updates", chat_id)
        return False

    async def cancel(self, chat_id: int | str, *, reason: str = "Cancelled.") -> str | None:
        """End the chat's dialog; returns its name, or None when there was none."""
        # Read again when an answer advanced the dialog between the read and the delete (in
        # another worker, say): that is no reason to say there is nothing to cancel.
        for _attempt in range(5):
            row = await asyncio.to_thread(self.open_dialog, chat_id)
            if row is None:
                return None
            if await asyncio.to_thread(self._finish, row, [_Output(reason)]):
                log.info("dialog %s in chat %s cancelled", row["name"], chat_id)
                return row["name"]
        log.warning("dialog in chat %s: cancel gave up after repeated concurrent updates", chat_id)
        return None

    async def expire(self) -> int:
        """End every dialog whose open question has waited past its timeout."""
        rows = await asyncio.to_thread(self._expired, self.clock())
        ended = 0
        for row in rows:
            ended += await self._time_out(row)
        return ended

    async def _time_out(self, row: dict) -> bool:
        note = (
            f"No answer in time, so I closed this conversation. "
            f"Start it again with /{esc(row['name'])}."
        )
        if not await asyncio.to_thread(self._finish, dict(row), [_Output(note)]):
            return False
        log.info("dialog %s in chat %s timed out", row["name"], row["chat_id"])
        return True

    def _expired(self, now: dt.datetime) -> list[dict]:
        with self.engine.connect() as conn:  # in a thread: a big read must not stall the loop
            rows = conn.execute(sa.select(dialogs).where(dialogs.c.expires_at < now)).mappings()
            return [dict(row) for row in rows]

    async def _advance(self, row: dict, answer: Answer | None, *, pressed: bool = False) -> bool:
        """Replay the dialog with `answer` appended; persist and send. False on a lost race.
        `pressed`: the answer is a button press, whose buttons the router took off already."""
        spec = self.specs.get(row["name"])
        entries = list(row["log"]) + ([{"a": answer.to_json()}] if answer else [])
        if spec is None or spec.version != row["code_version"]:
            return await asyncio.to_thread(
                self._finish, row, [_Output(SORRY_CHANGED)], pressed=pressed
            )
        run = _Run(row, entries, self.default_timeout, now=self.clock())
        run.checkpoint = lambda: asyncio.to_thread(self._checkpoint, row, run)
        try:
            await spec.fn(Dialog(run))
        except _Suspend:
            return await asyncio.to_thread(self._save, row, run, pressed=pressed)
        except _LostRace:
            return False
        except _EffectUnfinished as unfinished:
            if self.clock() - unfinished.claimed_at < EFFECT_GRACE:
                return False  # another worker is running it: read again in a moment
            log.warning(
                "dialog %s in chat %s: a side effect claimed at %s never finished",
                row["name"],
                row["chat_id"],
                unfinished.claimed_at.isoformat(),
            )
            return await asyncio.to_thread(
                self._finish, row, [_Output(SORRY_INTERRUPTED)], pressed=pressed
            )
        except DialogChanged as exc:
            log.warning(
                "dialog %s in chat %s no longer matches its log: %s",
                row["name"],
                row["chat_id"],
                exc,
            )
            return await asyncio.to_thread(
                self._finish, row, [_Output(SORRY_CHANGED)], pressed=pressed
            )
        except Exception:
            log.exception("dialog %s in chat %s failed", row["name"], row["chat_id"])
            return await asyncio.to_thread(
                self._finish, row, run.outputs + [_Output(SORRY_FAILED)], pressed=pressed
            )
        log.info("dialog %s in chat %s finished", row["name"], row["chat_id"])
        return await asyncio.to_thread(self._finish, row, run.outputs, pressed=pressed)

    def _save(self, row: dict, run: _Run, *, pressed: bool = False) -> bool:
        now = self.clock()
        timeout = run.timeout if run.timeout is not None else self.default_timeout
        values = {
            "log": run.log,
            "rev": row["rev"] + 1,
            "question": run.question,
            "expires_at": now + dt.timedelta(seconds=timeout) if timeout else None,
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            done = conn.execute(
                dialogs.update()
                .where(dialogs.c.chat_id == row["chat_id"], dialogs.c.rev == row["rev"])
                .values(**values)
            )
            if done.rowcount != 1:
                return False
            if not pressed:
                self._close_question(conn, row)
            self._send(conn, row, run.outputs)
        self.outbox.wake()
        row.update(values)
        return True

    def _checkpoint(self, row: dict, run: _Run) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                dialogs.update()
                .where(dialogs.c.chat_id == row["chat_id"], dialogs.c.rev == row["rev"])
                .values(log=run.log, rev=row["rev"] + 1, updated_at=self.clock())
            )
        if done.rowcount == 1:
            row["rev"] += 1
            return True
        return False

    def _finish(self, row: dict, outputs: list[_Output], *, pressed: bool = False) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                dialogs.delete().where(
                    dialogs.c.chat_id == row["chat_id"], dialogs.c.rev == row["rev"]
                )
            )
            if done.rowcount != 1:
                return False
            if not pressed:
                self._close_question(conn, row)
            self._send(conn, row, outputs, final=True)
        self.outbox.wake()
        return True

    def _close_question(self, conn, row: dict) -> None:
        """Take the buttons off the question the dialog is leaving (answered by typing, asked
        again, cancelled, timed out): an edit of that message, queued with the dialog's new
        state. Pressing a stale button would only get "This question is closed"."""
        sent = conn.execute(
            sa.select(outbox_table.c.key, outbox_table.c.text, outbox_table.c.buttons)
            .where(
                outbox_table.c.key.like(f"dlg:{row['dialog_id']}:%"),
                outbox_table.c.edit.is_(None),
            )
            .order_by(outbox_table.c.id.desc())
            .limit(1)
        )
        # The dialog's last message is the question it waits on (an ask ends a run); one
        # without buttons needs no edit. A pressed one is left to the router (`pressed`).
        asked = sent.first()
        if asked is not None and asked.buttons and asked.text:
            self.outbox.notify_in(
                conn, asked.text, chat_id=row["chat_id"], key=f"{asked.key}:closed", edit=asked.key
            )

    def _send(self, conn, row: dict, outputs: list[_Output], final: bool = False) -> None:
        # Messages are written to the outbox in the same transaction as the dialog's new state,
        # so a crash can neither advance the dialog without its question nor send it twice.
        for i, out in enumerate(outputs):
            key = f"dlg:{row['dialog_id']}:{row['rev']}:{'f' if final else ''}{i}"
            self.outbox.notify_in(
                conn, out.text, chat_id=row["chat_id"], key=key, buttons=out.buttons
            )


def _seen(row: dict, answer: Answer) -> bool:
    """Is this message already in the dialog's log?"""
    if answer.message_id is None:
        return False
    return any(entry.get("a", {}).get("m") == answer.message_id for entry in row["log"])
