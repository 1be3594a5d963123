"""Posting's scheduled work: each tick composes TWEETS_PER_TICK new posts and publishes each once.

How a tick stays exactly-once through a crash at any point:
1. The tick is written to the `state` row `posting.tick` ({at, want, done}) before anything else
   of posting's. The scheduler claims the tick (job_claims) just before, so a kill between the
   two leaves a claimed tick that never began and is never due again: at start, a claim newer
   than the last tick begun or skipped on purpose (`posting.tick.skipped`) is run then.
2. Each of its `want` posts is a numbered slot. One transaction inserts the slot's `state` row
   (its primary key: one owner per slot, whatever the number of workers) and the post as
   `pending` on every channel it goes to.
3. The post is published, then marked `sent` with the remote id.
At start, pending posts are published again: X answers a text it already has with 403
"duplicate content", which proves the earlier attempt went out, so the post is marked sent; the
Telegram channel's outbox key `post:<id>` makes a second attempt a no-op. Then an unfinished
tick's missing slots are made, and a claimed tick that never began is run. X's 429 stores its
reset time and X is skipped until then; its 401/403 pauses X (and alerts the owner once) until
the credentials change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from dataclasses import dataclass

import sqlalchemy as sa

from steward import db
from steward.config import Settings
from steward.features import Feature, Job, Services
from steward.posting import recovery, store
from steward.posting.compose import ComposeError, Composer
from steward.posting.publishers import Published, PublishError
from steward.posting.sources import SourceError
from steward.posting.store import (
    PAUSED_KEY,
    SKIPPED_KEY,
    TICK_JOB,
    TICK_KEY,
    X_AUTH_KEY,
    X_RETRY_KEY,
)
from steward.posting.wiring import DRY_RUN_HINT, X_VARIABLES, build_parts
from steward.posting.x_errors import Kind, classify
from steward.telegram.formatting import esc

log = logging.getLogger("steward.posting")

SLOT_PREFIX = "posting.slot:"
SLOTS_KEPT = dt.timedelta(days=7)
RATE_LIMIT_FALLBACK = dt.timedelta(minutes=15)  # a 429 without a reset header
REGENERATE = 5  # new texts tried when X calls a fresh one a duplicate


class _Taken(Exception):
    """The composed text was recorded by someone else meanwhile: compose another."""


@dataclass
class Outcome:
    channel: str
    post_id: int
    state: str  # "sent", "pending" (try again later), "failed"
    url: str | None = None
    remote_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return self.__dict__.copy()


def month_start(now: dt.datetime) -> dt.datetime:
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Poster:
    """The live posting feature: what a tick, a recovery and a manual post do. Blocking."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings: Settings = services.settings
        self.engine = services.engine
        self.outbox = services.outbox
        self.clock = services.clock
        self.parts = build_parts(self.settings, self.outbox, self.engine, self.clock)
        self.rng = random.Random()
        self.problem: str | None = None  # why the last tick made fewer posts than wanted

    @property
    def channels(self) -> list[str]:
        return list(self.parts.publishers)

    @property
    def dry_run(self) -> bool:
        return self.channels == ["dry-run"]

    def summary(self) -> str:
        s = self.settings
        line = (
            f"{s.tweets_per_tick} post(s) every {s.post_interval} min from "
            f"{self.parts.template_shown} and {self.parts.words_shown}"
        )
        if self.dry_run:
            return f"{line}; {DRY_RUN_HINT}"
        targets = ["X" if c == "x" else f"Telegram {s.post_telegram_chat}" for c in self.channels]
        return f"{line} to {' and '.join(targets)}"

    # -- state -------------------------------------------------------------------------------

    def load(self, key: str):
        with self.engine.connect() as conn:
            return store.load_value(conn, key)

    def save(self, key: str, value) -> None:
        with self.engine.begin() as conn:
            store.save_value(conn, key, value, self.clock())

    def paused(self) -> dict | None:
        return self.load(PAUSED_KEY) or None

    def set_paused(self, by: str | None) -> None:
        value = {"by": by, "at": self.clock().isoformat()} if by else None
        self.save(PAUSED_KEY, value)

    def blocked(self) -> dict[str, str]:
        """Channels that must not be posted to now, with the reason."""
        out: dict[str, str] = {}
        if "x" not in self.parts.publishers:
            return out
        now = self.clock()
        if self.load(X_AUTH_KEY) == self.parts.x_fingerprint:
            out["x"] = "X refused the credentials; paused until they change"
        elif (retry := self.load(X_RETRY_KEY)) and dt.datetime.fromisoformat(retry) > now:
            out["x"] = f"X's rate limit holds until {retry[:19]} UTC"
        elif (limit := self.settings.post_monthly_limit) and self.month_count() >= limit:
            out["x"] = f"POST_MONTHLY_LIMIT={limit} reached for this month"
        return out

    def month_count(self) -> int:
        with self.engine.connect() as conn:
            return store.month_count(conn, month_start(self.clock()), "x")

    # -- start -------------------------------------------------------------------------------

    def recover(self) -> None:
        """At start: finish what a stop or a crash left (see recovery.py)."""
        recovery.recover(self)

    # -- a tick ------------------------------------------------------------------------------

    async def tick(self, scheduled_at: dt.datetime) -> None:
        await asyncio.to_thread(self.scheduled_tick, scheduled_at)

    def scheduled_tick(self, at: dt.datetime) -> list[Outcome]:
        if (paused := self.paused()) is not None:
            log.info("posting is paused (by %s): tick skipped", paused.get("by"))
            self.save(SKIPPED_KEY, at.isoformat())
            return []
        recovery.reconcile(self)
        recovery.finish_cut_short(self)  # one left over from a stop while posting was paused
        return self.run_tick(at, want=self.settings.tweets_per_tick)

    def run_tick(self, at: dt.datetime, *, want: int, resume: bool = False) -> list[Outcome]:
        self.problem = None
        blocked = self.blocked()
        channels = [c for c in self.channels if c not in blocked]
        for channel, reason in blocked.items():
            log.info("not posting to %s this tick: %s", channel, reason)
            if reason.startswith("POST_MONTHLY_LIMIT"):
                self._cap_notice()
        if not channels:
            self.problem = "nothing posted: " + "; ".join(blocked.values())
            self.save(SKIPPED_KEY, at.isoformat())
            return []
        if not resume:
            self.save(TICK_KEY, {"at": at.isoformat(), "want": want, "done": False})
        taken = self._slots(at)
        composer = Composer(self.parts.template, self.parts.words(at), self.engine, self.rng)
        outcomes: list[Outcome] = []
        for slot in range(want):
            if slot in taken:
                continue
            channels = self._within_cap(channels)
            if not channels:
                self.problem = self.problem or "POST_MONTHLY_LIMIT reached during the tick"
                break
            try:
                made = self._post_slot(at, slot, channels, composer)
            except (ComposeError, SourceError) as exc:
                log.warning("tick of %s: no post made: %s", at.isoformat(), exc)
                self.problem = f"no post made: {exc}"
                break
            outcomes += made
            for held in [o for o in made if o.state == "pending"]:
                self.problem = f"{held.channel}: {held.error}"
                channels = [c for c in channels if c != held.channel]
        else:
            self.save(TICK_KEY, {"at": at.isoformat(), "want": want, "done": True})
        sent = sum(o.state == "sent" for o in outcomes)
        log.info("tick of %s: %d sent, %d waiting", at.isoformat(), sent, len(outcomes) - sent)
        self._forget_old_slots()
        return outcomes

    def _within_cap(self, channels: list[str]) -> list[str]:
        limit = self.settings.post_monthly_limit
        if "x" not in channels or not limit or self.month_count() < limit:
            return channels
        self._cap_notice()
        return [c for c in channels if c != "x"]

    def _cap_notice(self) -> None:
        limit = self.settings.post_monthly_limit
        month = month_start(self.clock()).strftime("%Y-%m")
        self.outbox.notify(
            f"Posting to X stopped for {month}: POST_MONTHLY_LIMIT={limit} posts are out. "
            "It goes on next month, or raise the limit.",
            key=f"posting:cap:{month}",
        )

    def _post_slot(self, at, slot, channels, composer) -> list[Outcome]:
        for _attempt in range(REGENERATE):
            text = composer.compose(channels)
            try:
                ids = self._claim(at, slot, text, channels)
            except _Taken:
                continue
            if ids is None:
                return []  # another worker owns this slot
            outcomes = []
            for channel, post_id in ids.items():
                outcome = self.send(post_id, text, channel)
                if outcome.error == "duplicate":
                    outcome = self._regenerate(at, composer, post_id)
                outcomes.append(outcome)
            return outcomes
        raise ComposeError("every new text was taken by another worker meanwhile")

    def _claim(self, at, slot, text, channels) -> dict[str, int] | None:
        now = self.clock()
        key = f"{SLOT_PREFIX}{at.isoformat()}:{slot}"
        try:
            with self.engine.begin() as conn:
                row = {"key": key, "value": {"hash": store.text_hash(text)}, "updated_at": now}
                conn.execute(sa.insert(db.state).values(**row))
                ids = {}
                for channel in channels:
                    post_id = store.record_pending(
                        conn, text=text, channel=channel, now=now, tick=at
                    )
                    if post_id is None:
                        raise _Taken
                    ids[channel] = post_id
                return ids
        except sa.exc.IntegrityError:
            return None

    def _regenerate(self, at, composer, refused_id: int) -> Outcome:
        """X already has a fresh text: keep it as used and post another in its place."""
        outcome = Outcome("x", refused_id, "failed", error="X already has this text")
        for _ in range(REGENERATE):
            text = composer.compose(["x"])
            with self.engine.begin() as conn:
                store.mark_failed(conn, outcome.post_id, error="X already has this text")
                post_id = store.record_pending(
                    conn, text=text, channel="x", now=self.clock(), tick=at
                )
            if post_id is None:
                continue
            outcome = self.send(post_id, text, "x")
            if outcome.error != "duplicate":
                return outcome
        return outcome

    def send(self, post_id: int, text: str, channel: str, *, recovering=False) -> Outcome:
        publisher = self.parts.publishers[channel]
        try:
            published: Published = publisher.publish(text, str(post_id))
        except PublishError as exc:
            return self._failed(post_id, channel, exc, recovering)
        with self.engine.begin() as conn:
            store.mark_sent(
                conn, post_id, now=self.clock(), remote_id=published.remote_id, url=published.url
            )
        return Outcome(channel, post_id, "sent", published.url, published.remote_id)

    def _failed(self, post_id, channel, exc: PublishError, recovering: bool) -> Outcome:
        now = self.clock()
        if exc.duplicate and recovering:
            # The earlier attempt reached X before the stop: it is out, once.
            with self.engine.begin() as conn:
                store.mark_sent(conn, post_id, now=now)
            return Outcome(channel, post_id, "sent")
        if exc.duplicate:
            return Outcome(channel, post_id, "failed", error="duplicate")
        if exc.auth:
            self._refused(exc.reason)
        elif exc.retry_at is not None or _rate_limited(exc):
            retry_at = exc.retry_at or now + RATE_LIMIT_FALLBACK
            self.save(X_RETRY_KEY, retry_at.isoformat())
            log.warning("%s: skipping X until %s", exc.reason, retry_at.isoformat())
        elif exc.permanent:
            with self.engine.begin() as conn:
                store.mark_failed(conn, post_id, error=exc.reason)
            log.warning("post %d refused by %s for good: %s", post_id, channel, exc.reason)
            return Outcome(channel, post_id, "failed", error=exc.reason)
        else:
            log.warning("post %d to %s waits for a retry: %s", post_id, channel, exc.reason)
        return Outcome(channel, post_id, "pending", error=exc.reason)

    def _refused(self, reason: str) -> None:
        fingerprint = self.parts.x_fingerprint
        self.save(X_AUTH_KEY, fingerprint)
        log.error("%s Posting to X is paused until the credentials change.", reason)
        self.outbox.notify(
            f"⚠️ {esc(reason)} Posting to X is paused until {esc(', '.join(X_VARIABLES))} "
            "change (get new tokens with <code>python auth_tool.py x</code>). "
            "Posts wait in the store and go out then.",
            key=f"posting:x-refused:{fingerprint}",
            urgent=True,
        )

    def _slots(self, at: dt.datetime) -> set[int]:
        prefix = f"{SLOT_PREFIX}{at.isoformat()}:"
        with self.engine.connect() as conn:
            keys = conn.scalars(sa.select(db.state.c.key).where(db.state.c.key.startswith(prefix)))
            return {int(k.rsplit(":", 1)[1]) for k in keys}

    def _forget_old_slots(self) -> None:
        cutoff = self.clock() - SLOTS_KEPT
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(db.state).where(
                    db.state.c.key.startswith(SLOT_PREFIX), db.state.c.updated_at < cutoff
                )
            )

    # -- status ------------------------------------------------------------------------------

    def status_lines(self) -> list[str]:
        lines = []
        if "x" in self.parts.publishers:
            limit = self.settings.post_monthly_limit
            cap = f"of {limit}" if limit else "(no monthly cap)"
            lines.append(f"X posts this month: {self.month_count()} {cap}")
        when = self.services.next_runs().get(TICK_JOB)
        lines.append(f"next tick: {when.isoformat(timespec='minutes') if when else 'not planned'}")
        if (paused := self.paused()) is not None:
            lines.append(f"paused by {paused.get('by')} since {paused.get('at', '')[:16]}")
        lines += [f"{channel}: {reason}" for channel, reason in self.blocked().items()]
        return lines


def _rate_limited(exc: PublishError) -> bool:
    cause = exc.__cause__
    return cause is not None and classify(cause).kind is Kind.RATE_LIMITED


def build_feature(services: Services) -> Feature:
    from steward.posting import commands

    poster = Poster(services)

    async def start() -> None:
        await asyncio.to_thread(poster.recover)

    every = dt.timedelta(minutes=services.settings.post_interval)
    return Feature(
        "posting",
        True,
        poster.summary(),
        commands=commands.build(poster, services),
        jobs=[Job(TICK_JOB, every, poster.tick)],
        dialogs=[("post", commands.post_dialog(poster), commands.POST_DIALOG_VERSION)],
        start=start,
        status=poster.status_lines,
    )
