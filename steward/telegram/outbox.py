"""The outbox: the one way the worker sends notifications, as rows in the store.

`notify()` writes a row and returns at once; the `OutboxSender` (sender.py) drains the rows to
Telegram within its limits. A row's `key` makes a notification idempotent: the same key is
stored, and so sent, once, even across restarts.

Mutes. `/mute 2h` calls `mute(chat, until)`. While a chat is muted:
- non-urgent notifications to it are stored as 'held' and not sent;
- urgent ones go out at once, their text (or caption) prefixed with "🔕 Sent despite mute: ";
- edits of messages already sent still go out: an edit makes no sound, and progress messages
  would otherwise freeze.
`unmute(chat)` (the /unmute command, or the sender when the mute runs out) turns the held rows
into ONE summary message: "While muted: N notifications were held." followed by the last five
held texts (photos and documents by their caption or name), each cut to a few lines. The held
rows are marked 'skipped' with the summary's id as the reason. Mutes live in the store, so they
survive restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db
from steward.telegram import store
from steward.telegram.formatting import esc, strip_html
from steward.telegram.store import outbox as t_outbox

MUTED_PREFIX = "🔕 Sent despite mute: "
SUMMARY_SHOWN = 5  # held texts quoted in the unmute summary
SUMMARY_CHARS = 400  # characters quoted from each


class Outbox:
    """Writes notifications to the store. Thread-safe: every call uses its own connection."""

    def __init__(
        self,
        engine: Engine,
        default_chat_id: str | int | None,
        clock: Callable[[], dt.datetime] = db.utcnow,
    ) -> None:
        self.engine = engine
        self.default_chat_id = None if default_chat_id in (None, "") else str(default_chat_id)
        self.clock = clock
        self._lock = threading.Lock()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []

    # -- writing -------------------------------------------------------------------------

    def notify(self, text: str | None = None, **kwargs) -> int:
        """Queue one notification and return its row id (the existing one for a known key).

        Keywords: chat_id, photo, caption, document, key, reply_to, edit, urgent, buttons.
        """
        row_id, pending = self._store(None, text, **kwargs)
        if pending:
            self._wake()
        return row_id

    def notify_in(self, conn, text: str | None = None, **kwargs) -> int:
        """`notify` inside the caller's transaction: the message exists if and only if the
        caller's other writes commit (dialogs move their state and send in one step). Call
        `wake()` after the commit."""
        return self._store(conn, text, **kwargs)[0]

    def wake(self) -> None:
        self._wake()

    def _store(
        self,
        conn,
        text: str | None = None,
        *,
        chat_id: str | int | None = None,
        photo: bytes | None = None,
        caption: str | None = None,
        document: tuple[str, bytes] | None = None,
        key: str | None = None,
        reply_to: str | None = None,
        edit: str | None = None,
        urgent: bool = False,
        buttons: list[list[tuple[str, str]]] | None = None,
    ) -> tuple[int, bool]:
        """Write one row (on `conn`, or in a transaction of its own); (id, waiting to send)."""
        if photo is not None and document is not None:
            raise ValueError("a notification carries a photo or a document, not both")
        if text is None and photo is None and document is None and caption is None:
            raise ValueError("a notification needs a text, a photo, a document or a caption")
        if photo is None and document is None and caption is not None and text is None:
            text, caption = caption, None  # a caption without a file is just a text
        if edit is not None and (photo is not None or document is not None):
            raise ValueError("an edit changes text or a caption; it cannot send a new file")
        now = self.clock()
        # On our own, reads first and then a transaction holding one INSERT: on SQLite a
        # transaction that reads and then writes can fail at once when another writer got in
        # between. Inside a caller's transaction, its connection does both.
        with contextlib.ExitStack() as stack:
            reader = conn if conn is not None else stack.enter_context(self.engine.connect())
            if key is not None and (found := self._id_for_key(reader, key)) is not None:
                return found, False
            chat = self._chat_for(reader, chat_id, edit)
            muted = edit is None and self._muted(reader, chat, now)
        state = store.HELD if muted and not urgent else store.PENDING
        if muted and urgent:
            text, caption = _prefixed(text, caption, photo, document)
        values = dict(
            key=key,
            chat_id=chat,
            state=state,
            text=text,
            photo=photo,
            caption=caption,
            document_name=document[0] if document else None,
            document=document[1] if document else None,
            buttons=[[list(b) for b in row] for row in buttons] if buttons else None,
            reply_to=reply_to,
            edit=edit,
            urgent=urgent,
            created_at=now,
            attempts=0,
            parts_sent=0,
        )
        insert = sa.insert(t_outbox).values(**values)
        try:
            if conn is None:
                with self.engine.begin() as writer:
                    row_id = writer.execute(insert).inserted_primary_key[0]
            else:
                with conn.begin_nested():  # a savepoint: a lost key race leaves the rest intact
                    row_id = conn.execute(insert).inserted_primary_key[0]
        except sa.exc.IntegrityError:
            # Another thread or process stored the same key between our look and our write.
            if key is None:
                raise
            if conn is not None:
                return self._id_for_key(conn, key), False
            with self.engine.connect() as reader:
                return self._id_for_key(reader, key), False
        return row_id, state == store.PENDING

    async def anotify(self, text: str | None = None, **kwargs) -> int:
        """`notify` for the event loop (the store write runs in a thread)."""
        return await asyncio.to_thread(self.notify, text, **kwargs)

    @staticmethod
    def _id_for_key(conn, key: str) -> int | None:
        return conn.scalar(sa.select(t_outbox.c.id).where(t_outbox.c.key == key))

    def _chat_for(self, conn, chat_id: str | int | None, edit: str | None) -> str:
        if edit is not None and chat_id is None:
            # An edit goes where the edited message went.
            target = conn.scalar(sa.select(t_outbox.c.chat_id).where(t_outbox.c.key == edit))
            if target is not None:
                return target
        chat = self.default_chat_id if chat_id in (None, "") else str(chat_id)
        if chat is None:
            return ""  # recorded as failed by the sender: nowhere to send
        moved = conn.scalar(
            sa.select(store.outbox_chat_moves.c.new_chat_id).where(
                store.outbox_chat_moves.c.old_chat_id == chat
            )
        )
        return moved or chat

    # -- waking the sender ---------------------------------------------------------------

    def subscribe(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """Call `callback` on `loop` after every new pending row (the sender's wake-up)."""
        with self._lock:
            self._listeners.append((loop, callback))

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners = [(lp, cb) for lp, cb in self._listeners if cb != callback]

    def _wake(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for loop, callback in listeners:
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback)

    # -- mutes ---------------------------------------------------------------------------

    def mute(self, chat_id: str | int, until: dt.datetime) -> None:
        chat, now = str(chat_id), self.clock()
        with self.engine.begin() as conn:
            # A longer mute keeps the time it began.
            mutes, began = store.outbox_mutes, {"created_at": now}
            db.upsert(conn, mutes, {"chat_id": chat}, began, until=until)

    def muted_until(self, chat_id: str | int) -> dt.datetime | None:
        with self.engine.connect() as conn:
            until = conn.scalar(
                sa.select(store.outbox_mutes.c.until).where(
                    store.outbox_mutes.c.chat_id == str(chat_id)
                )
            )
        return until if until is not None and until > self.clock() else None

    def _muted(self, conn, chat: str, now: dt.datetime) -> bool:
        until = conn.scalar(
            sa.select(store.outbox_mutes.c.until).where(store.outbox_mutes.c.chat_id == chat)
        )
        return until is not None and until > now

    def unmute(self, chat_id: str | int) -> int:
        """End the mute; the held notifications become one summary. Returns how many were held."""
        chat = str(chat_id)
        with self.engine.begin() as conn:
            conn.execute(sa.delete(store.outbox_mutes).where(store.outbox_mutes.c.chat_id == chat))
            held = conn.execute(
                sa.select(
                    t_outbox.c.id,
                    t_outbox.c.text,
                    t_outbox.c.caption,
                    t_outbox.c.document_name,
                    t_outbox.c.photo.is_not(None).label("has_photo"),
                )
                .where(t_outbox.c.chat_id == chat, t_outbox.c.state == store.HELD)
                .order_by(t_outbox.c.id)
            ).all()
            if not held:
                return 0
            summary = _summary(held)
            summary_id = conn.execute(
                sa.insert(t_outbox).values(
                    chat_id=chat,
                    state=store.PENDING,
                    text=summary,
                    urgent=False,
                    created_at=self.clock(),
                    attempts=0,
                    parts_sent=0,
                )
            ).inserted_primary_key[0]
            conn.execute(
                sa.update(t_outbox)
                .where(t_outbox.c.id.in_([r.id for r in held]), t_outbox.c.state == store.HELD)
                .values(state=store.SKIPPED, reason=f"held while muted, summed up in #{summary_id}")
            )
        self._wake()
        return len(held)

    def expired_mutes(self) -> list[str]:
        """Chats whose mute has run out (the sender unmutes them, releasing the summary)."""
        with self.engine.connect() as conn:
            rows = conn.scalars(
                sa.select(store.outbox_mutes.c.chat_id).where(
                    store.outbox_mutes.c.until <= self.clock()
                )
            ).all()
        return list(rows)

    def prune(self, older_than: dt.timedelta = dt.timedelta(days=30)) -> int:
        """Forget settled rows (sent, failed, skipped) older than `older_than`: they hold photo
        bytes, and their keys only need to outlive a restart or two."""
        cutoff = self.clock() - older_than
        done = (store.SENT, store.FAILED, store.SKIPPED)
        with self.engine.begin() as conn:
            result = conn.execute(
                t_outbox.delete().where(t_outbox.c.state.in_(done), t_outbox.c.created_at < cutoff)
            )
        return result.rowcount or 0

    # -- reading -------------------------------------------------------------------------

    def pending_count(self) -> int:
        """Notifications not yet delivered nor given up (held ones not included)."""
        with self.engine.connect() as conn:
            return conn.scalar(
                sa.select(sa.func.count()).where(
                    t_outbox.c.state.in_((store.PENDING, store.SENDING))
                )
            )

    def stats(self) -> dict[str, int]:
        """Row counts by state (every state present, zero when none)."""
        counts = dict.fromkeys(
            (store.PENDING, store.HELD, store.SENDING, store.SENT, store.FAILED, store.SKIPPED),
            0,
        )
        with self.engine.connect() as conn:
            for state, n in conn.execute(
                sa.select(t_outbox.c.state, sa.func.count()).group_by(t_outbox.c.state)
            ):
                counts[state] = n
        return counts


def _prefixed(text, caption, photo, document) -> tuple[str | None, str | None]:
    if photo is not None or document is not None:
        return text, MUTED_PREFIX + (caption or "")
    return MUTED_PREFIX + (text or ""), caption


def _summary(held) -> str:
    count = len(held)
    lines = [f"While muted: {count} notification{'s were' if count != 1 else ' was'} held."]
    shown = held[-SUMMARY_SHOWN:]
    if count > len(shown):
        lines.append(f"The last {len(shown)}:")
    for row in shown:
        if row.text is not None:
            plain = strip_html(row.text)
        elif row.has_photo:
            plain = "[photo] " + strip_html(row.caption or "")
        else:
            plain = f"[document {row.document_name}] " + strip_html(row.caption or "")
        plain = plain.strip()
        if len(plain) > SUMMARY_CHARS:
            plain = plain[: SUMMARY_CHARS - 1].rstrip() + "…"
        lines.append("• " + esc(plain))
    return "\n".join(lines)
