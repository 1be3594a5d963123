"""Publishing one recorded post, for the Poster: the in-flight claim, retries of passing
faults within the tick, and what each refusal means (sent after all, failed for good, paused
until the credentials change, skipped until a rate limit resets, or waiting for a retry).

A part of `Poster` (poster.py), kept apart so that each module reads as one concern: it uses
the poster's store, clock, parts, outbox, lease and keys.
"""

from __future__ import annotations

import datetime as dt
import logging

from steward.posting import problems, store
from steward.posting.inflight import claimant_gone
from steward.posting.publishers import Outcome, Published, PublishError
from steward.posting.x_errors import rate_limited

log = logging.getLogger("steward.posting")

RATE_LIMIT_FALLBACK = dt.timedelta(minutes=15)  # a 429 without a reset header
RETRY_DELAYS = (10.0, 30.0, 80.0)  # seconds before retrying a 500/503, within the tick's slot


class Sending:
    """Poster's publishing half (see the module docstring)."""

    def publish_pending(self, post: store.Post) -> Outcome | None:
        """Publish a post left pending, if its claimant is gone; None when another holds it."""
        worker, until = self.lease()
        gone = post.claimed_by if claimant_gone(post.claimed_by) else None
        with self.engine.begin() as conn:
            before = store.claim(
                conn, post.id, worker=worker, now=self.clock(), lease_until=until, gone=gone
            )
        if before is None:
            return None
        return self.send(post.id, post.text, post.channel, attempted=before > 0)

    def send(self, post_id: int, text: str, channel: str, *, attempted: bool) -> Outcome:
        """Publish a post this poster holds. `attempted`: an earlier attempt may have reached
        the channel, so its "duplicate" answer proves the post is out."""
        publisher = self.parts.publishers[channel]
        delays = self._retry_delays()
        while True:
            try:
                published: Published = publisher.publish(text, str(post_id))
                break
            except PublishError as exc:
                if not exc.retry_soon or not delays or not self._wait(delays.pop(0), post_id):
                    return self._failed(post_id, channel, exc, attempted)
                attempted = True  # the failed request may have reached the channel all the same
        with self.engine.begin() as conn:
            store.mark_sent(
                conn, post_id, now=self.clock(), remote_id=published.remote_id, url=published.url
            )
        return Outcome(channel, post_id, "sent", published.url, published.remote_id)

    def _retry_delays(self) -> list[float]:
        """Back-off before each retry of a passing fault, kept inside half the tick's slot."""
        room, out = self.settings.post_interval * 60 / 2, []
        for delay in self.retry_delays:
            if sum(out) + delay > room:
                break
            out.append(delay)
        return out

    def _wait(self, delay: float, post_id: int) -> bool:
        """Sleep before a retry, holding the post; False when a stop came or the claim is lost."""
        log.warning("post %d: a passing fault; retrying in %g s", post_id, delay)
        if self.stopping.wait(delay):
            return False
        worker, until = self.lease()
        with self.engine.begin() as conn:  # renew the lease: this poster is still at it
            held = store.claim(conn, post_id, worker=worker, now=self.clock(), lease_until=until)
        return held is not None

    def _failed(self, post_id, channel, exc: PublishError, attempted: bool) -> Outcome:
        now = self.clock()
        if exc.duplicate and attempted:
            # An earlier attempt of ours reached the channel before a stop: it is out, once.
            with self.engine.begin() as conn:
                store.mark_sent(conn, post_id, now=now)
            return Outcome(channel, post_id, "sent")
        if exc.duplicate:
            # Our first attempt: the channel had this text from elsewhere. Never "sent".
            with self.engine.begin() as conn:
                store.mark_failed(conn, post_id, error="the channel already has this text")
            return Outcome(channel, post_id, "failed", error="duplicate")
        with self.engine.begin() as conn:
            store.release(conn, post_id, self.worker)  # any worker may retry it (or it ends)
        if exc.auth:
            self.told = True
            problems.refused(
                self.engine, self.outbox, channel, exc.reason, self.parts.fingerprints,
                self.clock(), bot=self.bot, fix=self.parts.credentials_fix.get(channel),
            )  # fmt: skip
        elif exc.retry_at is not None or rate_limited(exc.__cause__):
            retry_at = exc.retry_at or now + RATE_LIMIT_FALLBACK
            self.save(store.retry_key(channel), retry_at.isoformat())
            log.warning("%s: skipping %s until %s", exc.reason, channel, retry_at.isoformat())
        elif exc.permanent:
            with self.engine.begin() as conn:
                store.mark_failed(conn, post_id, error=exc.reason)
            log.warning("post %d refused by %s for good: %s", post_id, channel, exc.reason)
            return Outcome(channel, post_id, "failed", error=exc.reason)
        else:
            log.warning("post %d to %s waits for a retry: %s", post_id, channel, exc.reason)
        return Outcome(channel, post_id, "pending", error=exc.reason)
