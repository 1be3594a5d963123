"""What a start does after a stop or a crash: settle pending posts, finish the ticks left over.

The order matters: posts left pending are published again first (X's duplicate answer proves an
earlier attempt went out), then the slots a cut-short tick never made, then a tick that was
claimed but never began. A paused worker does none of it until /resume_posting.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from steward import scheduler
from steward.posting import store
from steward.posting.inflight import claimant_gone

if TYPE_CHECKING:
    from steward.posting.poster import Poster

log = logging.getLogger("steward.posting")


def recover(poster: Poster) -> None:
    """At start: forget a refusal of other credentials, finish pending posts and the tick."""
    for channel, fingerprint in poster.parts.fingerprints.items():
        refused = poster.load(store.refused_key(channel))
        if refused and refused != fingerprint:
            log.info("%s credentials changed since they were refused: posting again", channel)
            poster.save(store.refused_key(channel), None)
    if (paused := poster.paused()) is not None:
        # The owner said stop: what a stop left pending waits for /resume_posting too.
        log.info("posting is paused (by %s): pending posts wait for the resume", paused["by"])
        return
    reconcile(poster)
    finish_cut_short(poster)
    finish_claimed(poster)


def finish_claimed(poster: Poster) -> None:
    """Run the newest tick the scheduler claimed if a stop came before the tick began."""
    if poster.schedule.planned_here:  # the claims are the minute looks: the plan says
        if (planned := poster.schedule.due(poster.clock(), poster.last_tick())) is not None:
            log.info("running the tick planned for %s, missed by a stop", planned.isoformat())
            poster.run_tick(planned, want=poster.settings.tweets_per_tick)
        return
    claimed = scheduler.last_claim(poster.engine, store.TICK_JOB)  # main's job
    last, skipped = poster.load(store.TICK_KEY), poster.load(store.SKIPPED_KEY)
    seen = [dt.datetime.fromisoformat(at) for at in (last and last["at"], skipped) if at]
    if claimed is None or any(at >= claimed for at in seen):
        return
    log.info("running the tick of %s: a stop came after its claim", claimed.isoformat())
    poster.run_tick(claimed, want=poster.settings.tweets_per_tick)


def finish_cut_short(poster: Poster) -> None:
    """Finish the last tick if a stop (or a SIGKILL) cut it short."""
    last = poster.load(store.TICK_KEY)
    if last and not last.get("done"):
        at = dt.datetime.fromisoformat(last["at"])
        log.info("finishing the tick of %s, cut short by a stop", last["at"])
        poster.run_tick(at, want=last["want"], resume=True)


def reconcile(poster: Poster) -> int:
    """Publish posts left pending whose claimant is gone; returns how many were settled.

    A post another worker holds (its lease still runs) is left to it: during a deploy overlap
    the old worker may be sending it right now."""

    with poster.engine.connect() as conn:
        waiting = store.pending(conn, bot=poster.bot)
    now = poster.clock()
    waiting = [
        p
        for p in waiting
        if p.lease_until is None or p.lease_until < now or claimant_gone(p.claimed_by)
    ]
    settled, stop = 0, set(poster.blocked())
    for post in waiting:
        if post.channel in stop:
            continue
        if post.channel not in poster.parts.publishers:
            with poster.engine.begin() as conn:
                store.mark_skipped(conn, post.id, reason=f"{post.channel} is not configured")
            continue
        outcome = poster.publish_pending(post)
        if outcome is None:
            continue  # another worker took it meanwhile
        if outcome.state == "pending":
            stop.add(post.channel)
        else:
            settled += 1
    if settled:
        log.info("settled %d post(s) left pending", settled)
    return settled
