"""The posting service: each tick composes TWEETS_PER_TICK new posts and publishes each once.

How a tick stays exactly-once through a crash at any point:
1. The tick is written to the `state` row `posting.tick` ({at, want, done}) before anything else
   of posting's. The scheduler claims the tick (job_claims) just before, so a kill between the
   two leaves a claimed tick that never began and is never due again: at start, a claim newer
   than the last tick begun or skipped on purpose (`posting.tick.skipped`) is run then.
2. Each of its `want` posts is a numbered slot. One transaction inserts the slot's `state` row
   (its primary key: one owner per slot, whatever the number of workers) and the post as
   `pending` on every channel it goes to.
3. The post is published under an in-flight claim (inflight.py), then marked `sent`.
Pending posts whose claimant is gone are published again: X's 403 "duplicate content" after an
attempt of ours proves it went out (marked sent); on a first attempt X had the text before us
(marked failed, never sent; the tick makes another). The Telegram channel's outbox key
`post:<id>` makes a second attempt a no-op. X's 429 skips X until its reset; its 401/403
pauses X (and alerts the owner once) until the credentials change.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable

import sqlalchemy as sa

from steward import db
from steward.config import Settings
from steward.features import Clock, Services
from steward.posting import inflight, problems, recovery, schedule, store
from steward.posting.compose import ComposeError, Composer
from steward.posting.inflight import LEASE
from steward.posting.publishers import Outcome, month_start
from steward.posting.sending import RETRY_DELAYS, Sending
from steward.posting.sources import SourceError
from steward.posting.store import (
    PAUSED_KEY,
    SKIPPED_KEY,
    TICK_KEY,
)
from steward.posting.wiring import SHOWN, Parts, build_parts

log = logging.getLogger("steward.posting")

SLOT_PREFIX = "posting.slot:"
SLOTS_KEPT = dt.timedelta(days=7)
REGENERATE = 5  # new texts tried when X calls a fresh one a duplicate


class _Taken(Exception):
    """The composed text was recorded by someone else meanwhile: compose another."""


class Poster(Sending):
    """What a tick, a recovery and a manual post do, for one bot. Blocking.

    Its inputs are explicit (one bot's settings, store, outbox, publishers): one per bot."""

    def __init__(
        self,
        settings: Settings,
        engine,
        outbox,
        clock: Clock,
        *,
        parts: Parts | None = None,
        next_runs: Callable[[], dict[str, dt.datetime | None]] = lambda: {},
        worker: str | None = None,
        bot: str = store.MAIN,
    ) -> None:
        self.bot = bot  # whose posts, state keys and owner alerts these are
        self.settings = settings
        self.engine = engine
        self.outbox = outbox
        self.clock = clock
        self.parts = parts or build_parts(settings, outbox, engine, clock)
        self.schedule = schedule.from_settings(settings)
        self.next_runs = next_runs
        self.worker = worker or inflight.worker_name(self)
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.stopping = threading.Event()  # set at stop: a back-off wait ends at once
        self.rng = random.Random()
        self.problem: str | None = None  # why the last tick made fewer posts than wanted
        self.told = False  # whether the last tick queued a message to the owner itself

    @classmethod
    def from_services(cls, services: Services) -> Poster:
        return cls(
            services.settings,
            services.engine,
            services.outbox,
            services.clock,
            next_runs=lambda: services.next_runs(),
        )

    @property
    def channels(self) -> list[str]:
        return list(self.parts.publishers)

    @property
    def dry_run(self) -> bool:
        return self.channels == ["dry-run"]

    # -- state -------------------------------------------------------------------------------

    def key(self, key: str) -> str:
        """This bot's name for one of posting's `state` or outbox keys (see store.bot_key)."""
        return store.bot_key(key, self.bot)

    def load(self, key: str):
        """This bot's value of `key` (main's key names; the prefix is added here)."""
        with self.engine.connect() as conn:
            return store.load_value(conn, self.key(key))

    def save(self, key: str, value) -> None:
        with self.engine.begin() as conn:
            store.save_value(conn, self.key(key), value, self.clock())

    def paused(self) -> dict | None:
        return self.load(PAUSED_KEY) or None

    def set_paused(self, by: str | None) -> None:
        value = {"by": by, "at": self.clock().isoformat()} if by else None
        self.save(PAUSED_KEY, value)

    def blocked(self) -> dict[str, str]:
        """Channels that must not be posted to now, with the reason."""
        out: dict[str, str] = {}
        now = self.clock()
        for channel, fingerprint in self.parts.fingerprints.items():
            if self.load(store.refused_key(channel)) == fingerprint:
                out[channel] = f"{SHOWN[channel]} refused the credentials; paused until they change"
            elif (retry := self.load(store.retry_key(channel))) and dt.datetime.fromisoformat(
                retry
            ) > now:
                out[channel] = f"{SHOWN[channel]}'s rate limit holds until {retry[:19]} UTC"
        limit = self.settings.post_monthly_limit
        if (
            "x" in self.parts.publishers
            and "x" not in out
            and limit
            and self.month_count() >= limit
        ):
            out["x"] = f"{self.cap} reached for this month"
        return out

    def last_tick(self) -> dt.datetime | None:
        """The newest tick begun or skipped on purpose."""
        last, skipped = self.load(TICK_KEY), self.load(SKIPPED_KEY)
        seen = [dt.datetime.fromisoformat(at) for at in (last and last["at"], skipped) if at]
        return max(seen, default=None)

    @property
    def cap(self) -> str:
        """The monthly cap on X as the owner set it: main's variable, a farm bot's option."""
        limit = self.settings.post_monthly_limit
        return (
            f"POST_MONTHLY_LIMIT={limit}" if self.bot == store.MAIN else f"--monthly-limit={limit}"
        )

    def month_count(self) -> int:
        with self.engine.connect() as conn:
            return store.month_count(conn, month_start(self.clock()), "x", bot=self.bot)

    # -- start -------------------------------------------------------------------------------

    def recover(self) -> None:
        """At start: finish what a stop or a crash left (see recovery.py)."""
        recovery.recover(self)

    # -- a tick ------------------------------------------------------------------------------

    def scheduled_tick(self, at: dt.datetime) -> list[Outcome]:
        if self.schedule.planned_here:  # the job looks each minute; post at a planned time
            planned = self.schedule.due(at, self.last_tick())
            if planned is None:
                return []
            at = planned
        if (paused := self.paused()) is not None:
            log.info("posting is paused (by %s): tick skipped", paused.get("by"))
            self.save(SKIPPED_KEY, at.isoformat())
            return []
        recovery.reconcile(self)
        recovery.finish_cut_short(self)  # one left over from a stop while posting was paused
        return self.run_tick(at, want=self.settings.tweets_per_tick)

    def run_tick(self, at: dt.datetime, *, want: int, resume: bool = False) -> list[Outcome]:
        self.problem, self.told = None, False
        blocked = self.blocked()
        channels = [c for c in self.channels if c not in blocked]
        for channel, reason in blocked.items():
            log.info("not posting to %s this tick: %s", channel, reason)
            if reason.startswith(self.cap):
                self._cap_notice()
        if not channels:
            self.problem = "nothing posted: " + "; ".join(blocked.values())
            self.save(SKIPPED_KEY, at.isoformat())
            return []
        if not resume:
            self.save(TICK_KEY, {"at": at.isoformat(), "want": want, "done": False})
        with self.engine.connect() as conn:
            taken = store.slots_taken(conn, self.key(f"{SLOT_PREFIX}{at.isoformat()}:"))
        words = self.parts.words(at)
        composer = self.composer(words)
        outcomes: list[Outcome] = []
        stuck: problems.Problem | None = None
        for slot in range(want):
            if slot in taken:
                continue
            channels = self._within_cap(channels)
            if not channels:
                self.problem = self.problem or f"{self.cap} reached during the tick"
                break
            try:
                made = self._post_slot(at, slot, channels, composer)
            except (ComposeError, SourceError) as exc:
                code = getattr(exc, "code", None)
                if code == "too-long" and len(channels) > 1 and "x" in channels:
                    # Only X's 280 cannot be met: the channels without that limit go on.
                    stuck = problems.from_error(exc, "X")
                    log.warning("not posting to X: %s", exc)
                    channels = [c for c in channels if c != "x"]
                    try:
                        made = self._post_slot(at, slot, channels, composer)
                    except (ComposeError, SourceError) as again:
                        exc = again
                    else:
                        outcomes += made
                        continue
                log.warning("tick of %s: no post made: %s", at.isoformat(), exc)
                self.problem = f"no post made: {exc}"
                if getattr(exc, "code", None) != "busy":
                    stuck = problems.from_error(exc)
                break
            outcomes += made
            for held in [o for o in made if o.state == "pending"]:
                self.problem = f"{held.channel}: {held.error}"
                channels = [c for c in channels if c != held.channel]
        # Done even when cut short by an error: the owner hears why (below), and the missing
        # posts are not made up for in a burst at a later tick.
        self.save(TICK_KEY, {"at": at.isoformat(), "want": want, "done": True})
        sent = sum(o.state == "sent" for o in outcomes)
        stuck = stuck or problems.reader_trouble(words)
        if stuck or sent:  # a tick that only met passing faults says nothing either way
            self.report(stuck)
        log.info("tick of %s: %d sent, %d waiting", at.isoformat(), sent, len(outcomes) - sent)
        with self.engine.begin() as conn:
            store.forget_state(conn, self.key(SLOT_PREFIX), self.clock() - SLOTS_KEPT)
        return outcomes

    def report(self, problem: problems.Problem | None) -> None:
        """Record why posting is stuck (None: it works) and tell the owner when that changed."""
        with self.engine.begin() as conn:
            told = problems.record(conn, self.outbox, problem, self.clock(), bot=self.bot)
        if told:
            self.told = True
            self.outbox.wake()

    def _within_cap(self, channels: list[str]) -> list[str]:
        limit = self.settings.post_monthly_limit
        if "x" not in channels or not limit or self.month_count() < limit:
            return channels
        self._cap_notice()
        return [c for c in channels if c != "x"]

    def _cap_notice(self) -> None:
        month = month_start(self.clock()).strftime("%Y-%m")
        self.told = True
        self.outbox.notify(
            problems.for_bot(
                f"Posting to X stopped for {month}: {self.cap} posts are out. "
                "It goes on next month, or raise the limit.",
                self.bot,
            ),
            key=self.key(f"posting:cap:{month}"),
        )

    def _post_slot(self, at, slot, channels, composer) -> list[Outcome]:
        for _attempt in range(REGENERATE):
            text = composer.compose(channels)
            try:
                ids = self._claim(at, slot, text, channels, composer.source)
            except _Taken:
                continue
            if ids is None:
                return []  # another worker owns this slot
            outcomes = []
            for channel, post_id in ids.items():
                outcome = self.send(post_id, text, channel, attempted=False)
                if outcome.error == "duplicate":
                    outcome = self._regenerate(at, composer, channel) or outcome
                outcomes.append(outcome)
            return outcomes
        raise ComposeError("every new text was taken by another worker meanwhile", "busy")

    def composer(self, words) -> Composer:
        """A composer for this bot's channels, held to each account's own length limit (a
        Mastodon instance's, asked once per publisher) so no text is made that it refuses."""
        limits = {
            channel: publisher.limit()
            for channel, publisher in self.parts.publishers.items()
            if callable(getattr(publisher, "limit", None))
        }
        return Composer(
            self.parts.template, words, self.engine, self.rng, bot=self.bot, limits=limits
        )

    def lease(self) -> tuple[str, dt.datetime]:
        """The in-flight claim a post recorded now carries: this poster, until the lease ends."""
        return self.worker, self.clock() + LEASE

    def _claim(self, at, slot, text, channels, source) -> dict[str, int] | None:
        """Own the slot and record its post pending on every channel, in one transaction; the
        word source's `recorded(conn)` (a farm bot's reader cursor) commits with them."""
        now = self.clock()
        key = self.key(f"{SLOT_PREFIX}{at.isoformat()}:{slot}")
        try:
            with self.engine.begin() as conn:
                row = {"key": key, "value": {"hash": store.text_hash(text)}, "updated_at": now}
                conn.execute(sa.insert(db.state).values(**row))
                ids = {}
                for channel in channels:
                    post_id = store.record_pending(
                        conn, text=text, channel=channel, now=now, tick=at, claim=self.lease(),
                        bot=self.bot,
                    )  # fmt: skip
                    if post_id is None:
                        raise _Taken
                    ids[channel] = post_id
                if (recorded := getattr(source, "recorded", None)) is not None:
                    recorded(conn)
                return ids
        except sa.exc.IntegrityError:
            return None

    def _regenerate(self, at, composer, channel: str) -> Outcome | None:
        """The channel had a fresh text before we sent it (the refused post is marked failed,
        never sent): post another in its place. None when no other text could be recorded."""
        outcome = None
        for _ in range(REGENERATE):
            text = composer.compose([channel])
            with self.engine.begin() as conn:
                post_id = store.record_pending(
                    conn, text=text, channel=channel, now=self.clock(), tick=at,
                    claim=self.lease(), bot=self.bot,
                )  # fmt: skip
            if post_id is None:
                continue
            outcome = self.send(post_id, text, channel, attempted=False)
            if outcome.error != "duplicate":
                return outcome
        return outcome
