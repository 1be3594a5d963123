"""Posting by hand: the preview of `python bot.py post --dry-run` and the /post dialog's steps.

The same store discipline as a tick (recorded pending before publishing, marked sent after), but
no tick slot: a manual post is one more post, not one of a tick's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from steward.posting import store
from steward.posting.compose import ComposeError
from steward.posting.sources import SourceError

if TYPE_CHECKING:
    from steward.posting.poster import Poster


def preview(poster: Poster, n: int) -> list[str]:
    """What the next tick would post: composed, neither published nor recorded."""
    channels = [c for c in poster.channels if c not in poster.blocked()] or poster.channels
    words = poster.parts.words(poster.clock())  # records nothing, so uses no words up
    composer = poster.composer(words)
    return [composer.compose(channels) for _ in range(n)]


def draft(poster: Poster) -> dict:
    """`{"text": ...}`, or `{"error": sentence}` when no post can be made (JSON for a dialog)."""
    try:
        return {"text": preview(poster, 1)[0]}
    except (ComposeError, SourceError) as exc:
        return {"error": str(exc)}


def publish_now(poster: Poster, text: str) -> list[dict]:
    """Publish one text at once on every channel that may be posted to now."""
    blocked = poster.blocked()
    outcomes = [{"channel": c, "state": "blocked", "error": r} for c, r in blocked.items()]
    channels = [c for c in poster.channels if c not in blocked]
    now = poster.clock()
    with poster.engine.begin() as conn:
        ids = {
            c: store.record_pending(
                conn, text=text, channel=c, now=now, claim=poster.lease(), bot=poster.bot
            )
            for c in channels
        }
    for channel, post_id in ids.items():
        if post_id is None:
            outcomes.append({"channel": channel, "state": "failed", "error": "already posted"})
            continue
        outcome = poster.send(post_id, text, channel, attempted=False)
        if outcome.error == "duplicate":
            outcome.error = "the channel already has this text"
        outcomes.append(outcome.to_json())
    return outcomes
