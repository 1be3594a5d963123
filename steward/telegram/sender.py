"""The outbox sender: one asyncio task that drains pending rows to a sink within flood limits.

How a row travels: pending -> sending (claimed with `UPDATE ... WHERE state = 'pending'`, row
count 1) -> sent (message_id, sent_at) | failed (reason); a transient error puts it back to
pending with a `not_before`. Chats are served concurrently, one message in flight per chat and
in id order, so a chat's next notification waits until the previous one was sent or failed.

Only one sender in all processes drains at a time: it holds the `outbox_lease` row, renews it,
and a sender whose lease ran out stops claiming. A sender that takes the lease over puts rows
left in 'sending' (by a process that was killed) back to pending. The window that cannot be
closed: a process killed after Telegram accepted a message but before the row was marked sent
repeats that one message (one message part, since a split text records each part it sent).

A sender whose loop or threads stalled past its lease must not send what it claimed before:
the next holder has put those rows back to pending and sends them. So each request is made
only while the lease surely still holds (see `_still_holds`), and a row claimed under an
earlier hold of the lease goes back to pending unsent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward import db
from steward.logs import one_line
from steward.store_health import StoreHealth
from steward.telegram import store
from steward.telegram.flood import FloodControl, FloodLimits
from steward.telegram.outbox import Outbox
from steward.telegram.sinks import DeliveryError, Sink

log = logging.getLogger("steward.outbox")


class OutboxSender:
    """Drains the outbox; `await start()`, `await flush()`, `await stop()`."""

    def __init__(
        self,
        engine: Engine,
        sink: Sink,
        limits: FloodLimits | None = None,
        *,
        flood: FloodControl | None = None,
        clock: Callable[[], dt.datetime] = db.utcnow,
        worker_id: str | None = None,
        outbox: Outbox | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        poll_interval: float = 1.0,
        lease_ttl: float = 15.0,
        backoff: tuple[float, float] = (1.0, 60.0),
        give_up_after: dt.timedelta = dt.timedelta(days=1),
        seed: int | None = None,
        health: StoreHealth | None = None,
    ) -> None:
        self.engine = engine
        self.health = health
        self.sink = sink
        # Shared with the bot's rate limiter when given: replies and the outbox, one budget.
        self.flood = flood or FloodControl(limits or FloodLimits(), monotonic)
        self.clock = clock
        self.monotonic = monotonic
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # Without an Outbox of this process to wake us, polling alone finds new rows.
        self.outbox = outbox
        self._mutes = outbox or Outbox(engine, None, clock=clock)
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.backoff = backoff
        self.give_up_after = give_up_after
        self._random = random.Random(seed)
        self._task: asyncio.Task | None = None
        self._tasks: dict[int, asyncio.Task] = {}  # row id -> its delivery
        self._busy: set[str] = set()  # chats with a delivery in flight
        self._event = asyncio.Event()
        self._stopping = False
        self._lease_until = -1.0  # monotonic time our lease surely still holds
        self._term = 0  # counts unbroken holds of the lease; a claim is good within its own
        self._next_mute_check = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        if self.outbox is not None:
            self.outbox.subscribe(asyncio.get_running_loop(), self._event.set)
        self._task = asyncio.create_task(self.run(), name="outbox-sender")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming, let in-flight sends finish (up to `timeout`), give up the lease."""
        self._stopping = True
        self._event.set()
        if self.outbox is not None:
            self.outbox.unsubscribe(self._event.set)
        if self._task is not None:
            await asyncio.wait([self._task], timeout=timeout)
        pending = list(self._tasks.values())
        if pending:
            done, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "outbox: %d sends cut short by the stop; retried at next start", len(late)
                )
                await asyncio.wait(late)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._lease_until > 0:
            await asyncio.to_thread(store.release_lease, self.engine, self.worker_id)
            self._lease_until = -1.0

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is pending or in flight; False if `timeout` ran out first."""
        deadline = self.monotonic() + timeout
        while True:
            if not self._tasks and await asyncio.to_thread(self._mutes.pending_count) == 0:
                return True
            if self.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        """Claim and deliver rows until `stop()`; polls every `poll_interval` besides wake-ups."""
        while not self._stopping:
            try:
                delay = self.poll_interval
                if await self._hold_lease():
                    await self._release_expired_mutes()
                    delay = min(delay, await self._dispatch())
                if self.health is not None:
                    self.health.answered()  # every round above reads the store at least once
            except sa.exc.SQLAlchemyError as exc:
                # The store may be briefly unreachable (a Postgres restart): one line, try again.
                log.warning("outbox: the store failed (%s); retrying", one_line(exc))
                if self.health is not None:
                    self.health.failed(exc)
                delay = self.poll_interval
            except Exception:
                log.exception("outbox: sender loop error; retrying in %.0fs", self.poll_interval)
                delay = self.poll_interval
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), seconds)
        self._event.clear()

    # -- the lease -----------------------------------------------------------------------

    async def _hold_lease(self) -> bool:
        now = self.monotonic()
        if now < self._lease_until - self.lease_ttl * 0.8:
            return True  # renewed recently
        held_before = now < self._lease_until
        if await asyncio.to_thread(store.take_lease, self.engine, self.worker_id, self.lease_ttl):
            # Trust the lease a little less long than it lasts in the store.
            self._lease_until = now + self.lease_ttl * 0.9
            if not held_before:
                self._term += 1
                await asyncio.to_thread(self._recover)
            return True
        if held_before or self._lease_until > 0:
            log.warning("outbox: lost the sender lease; another worker sends now")
        self._lease_until = -1.0
        return False

    def _still_holds(self, term: int) -> bool:
        """Does the lease under which a row was claimed still hold, long enough for a request?

        Answered without the store, so a send costs no extra round trip: the lease's expiry in
        the store is its renewal's start on the database's clock plus `lease_ttl`, and
        `_lease_until` is that start on our monotonic clock plus less than that. Before then
        no other sender can take the lease, and only a sender taking the lease puts claimed
        rows back to pending. A stall (of the loop, or of the threads renewals run in) shows
        as the monotonic clock passing `_lease_until`; a lease lost and taken again meanwhile
        shows as a new term. A quarter of the lease is kept for the request itself to reach
        Telegram (a request stalled longer than that after this check may still be repeated);
        a timely renewal leaves well over half, so a healthy sender never trips on it.
        """
        left = self._lease_until - self.monotonic()
        return term == self._term and left > self.lease_ttl * 0.25

    def _recover(self) -> None:
        """Rows left in 'sending' by a previous holder go back to pending (see module doc)."""
        n = store.recover(self.engine, keep=list(self._tasks))
        more = f"; retrying {n} notifications another sender had in hand" if n else ""
        log.info("outbox: this worker (%s) sends now%s", self.worker_id, more)

    # -- dispatching ---------------------------------------------------------------------

    async def _dispatch(self) -> float:
        """Start a delivery for every chat that may send now; return seconds to the next one."""
        heads = await asyncio.to_thread(store.heads, self.engine)
        now, soonest = self.clock(), self.poll_interval
        chosen: list[tuple[int, str]] = []
        for row_id, chat, state, not_before in heads:
            if state != store.PENDING or chat in self._busy:
                continue
            if not_before is not None and not_before > now:
                soonest = min(soonest, (not_before - now).total_seconds())
                continue
            wait = self.flood.wait(chat)
            if wait > 0:
                soonest = min(soonest, wait)
                continue
            if self.monotonic() >= self._lease_until or self._stopping:
                break
            # Reserve the chat and a global slot now, before any await.
            self._busy.add(chat)
            self.flood.begin(chat)
            chosen.append((row_id, chat))
        if not chosen:
            return soonest
        term = self._term
        try:
            claimed = await asyncio.to_thread(
                store.claim, self.engine, [r for r, _ in chosen], self.worker_id, self.clock()
            )
        except BaseException:
            claimed = {}
            raise
        finally:
            for row_id, chat in chosen:
                if row_id not in claimed:  # another sender took it, or the store failed
                    self._busy.discard(chat)
                    self.flood.cancel(chat)
        for row_id, row in claimed.items():
            self._tasks[row_id] = asyncio.create_task(self._deliver(row, term))
        return soonest

    # -- delivering one row ----------------------------------------------------------------

    async def _deliver(self, row: sa.Row, term: int) -> None:
        chat = row.chat_id
        reserved = True  # dispatch reserved the first request's flood slot
        try:
            parts = await asyncio.to_thread(store.plan_delivery, self.engine, row)
            if isinstance(parts, str):
                self.flood.cancel(chat)
                reserved = False
                await asyncio.to_thread(self._settle, row.id, store.SKIPPED, parts)
                return
            first_id = row.message_id
            for index in range(row.parts_sent, len(parts)):
                if not reserved:
                    await self._wait_for_slot(chat)
                    self.flood.begin(chat)
                    reserved = True  # until the request is made: a give-back cancels it
                if not self._still_holds(term):
                    await asyncio.to_thread(self._give_back, row.id, index)
                    return
                try:
                    message_id = await self.sink.deliver(parts[index])
                finally:
                    self.flood.end(chat)
                    reserved = False
                first_id = first_id if index > 0 else message_id
                if index + 1 < len(parts):
                    await asyncio.to_thread(self._progress, row.id, index + 1, first_id)
            await asyncio.to_thread(self._settle, row.id, store.SENT, None, first_id)
            log.debug("outbox #%d to %s sent (%d parts)", row.id, chat, len(parts))
        except DeliveryError as exc:
            if exc.retry_after is not None:
                self.flood.penalize(chat, exc.retry_after)
            await asyncio.to_thread(self._failed, row, exc)
        except asyncio.CancelledError:
            raise  # left in 'sending'; the next lease holder retries it
        except Exception as exc:
            log.exception("outbox #%d to %s: unexpected error, not retried", row.id, chat)
            await asyncio.to_thread(self._settle, row.id, store.FAILED, f"unexpected: {exc!r}")
        finally:
            if reserved:
                self.flood.cancel(chat)
            self._busy.discard(chat)
            self._tasks.pop(row.id, None)
            self._event.set()

    async def _wait_for_slot(self, chat: str) -> None:
        while (wait := self.flood.wait(chat)) > 0:
            await asyncio.sleep(min(wait, 0.05 if wait == float("inf") else wait))

    # -- recording outcomes --------------------------------------------------------------

    def _give_back(self, row_id: int, index: int) -> None:
        """The lease lapsed between claim and send: pending again, unless already taken over."""
        mine = store.update_claimed(self.engine, row_id, self.worker_id, state=store.PENDING)
        log.warning(
            "outbox #%d: the sender lease lapsed before part %d was sent (the worker stalled); %s",
            row_id,
            index + 1,
            "sent later" if mine else "the sender that holds the lease sends it",
        )

    def _progress(self, row_id: int, parts_sent: int, message_id: int | None) -> None:
        store.update_claimed(
            self.engine, row_id, self.worker_id, parts_sent=parts_sent, message_id=message_id
        )

    def _settle(
        self, row_id: int, state: str, reason: str | None, message_id: int | None = None
    ) -> None:
        values: dict = {"state": state, "reason": reason}
        if state == store.SENT:
            values.update(message_id=message_id, sent_at=self.clock())
        if not store.update_claimed(self.engine, row_id, self.worker_id, **values):
            log.warning("outbox #%d was taken over by another sender before it settled", row_id)

    def _failed(self, row: sa.Row, exc: DeliveryError) -> None:
        now = self.clock()
        if exc.migrate_to is not None:
            self._migrate(row, str(exc.migrate_to))
            return
        if exc.permanent and row.photo is not None and not row.parts_sent and row.edit is None:
            # A photo Telegram will not take (its size, its dimensions) must not take the news
            # with it: the words go out as text.
            log.warning("outbox #%d: photo refused (%s); sending it as text", row.id, exc.reason)
            text = "\n".join(part for part in (row.caption, row.text) if part) or exc.reason
            store.update_claimed(
                self.engine, row.id, self.worker_id, state=store.PENDING, photo=None,
                caption=None, text=text, reason=f"photo refused: {exc.reason}",
            )  # fmt: skip
            return
        if exc.permanent:
            log.error("outbox #%d to %s failed: %s", row.id, row.chat_id, exc.reason)
            self._settle(row.id, store.FAILED, exc.reason)
            return
        if exc.retry_after is not None:
            delay = exc.retry_after
        elif now - row.created_at > self.give_up_after:
            log.error(
                "outbox #%d to %s: gave up after %d attempts: %s",
                row.id,
                row.chat_id,
                row.attempts,
                exc.reason,
            )
            self._settle(row.id, store.FAILED, f"gave up: {exc.reason}")
            return
        else:
            low, high = self.backoff
            delay = min(high, low * 2 ** max(0, row.attempts - 1))
            delay *= self._random.uniform(0.5, 1.0)  # jitter keeps retries from bunching up
        log.warning("outbox #%d to %s: %s; retry in %.1fs", row.id, row.chat_id, exc.reason, delay)
        store.update_claimed(
            self.engine,
            row.id,
            self.worker_id,
            state=store.PENDING,
            reason=exc.reason,
            not_before=now + dt.timedelta(seconds=delay),
        )

    def _migrate(self, row: sa.Row, new_chat: str) -> None:
        """The group became a supergroup: re-address this and the chat's waiting rows."""
        moved = store.move_chat(
            self.engine, row.id, self.worker_id, row.chat_id, new_chat, self.clock()
        )
        log.warning(
            "outbox: chat %s moved to %s; %d waiting notifications follow it",
            row.chat_id,
            new_chat,
            moved,
        )

    async def _release_expired_mutes(self) -> None:
        now = self.monotonic()
        if now < self._next_mute_check:
            return
        self._next_mute_check = now + self.poll_interval
        for chat in await asyncio.to_thread(self._mutes.expired_mutes):
            held = await asyncio.to_thread(self._mutes.unmute, chat)
            log.info("outbox: mute of %s ran out; %d held notifications summed up", chat, held)
