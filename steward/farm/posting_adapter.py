"""The one seam between the farm and posting: a bot's tick made from posting's public pieces.

Posting owns templates, word sources, publishers and text rules; the farm owns which bot runs
when, its tokens, and its own record of posts (`farm_posts`: dedupe, monthly cap and
exactly-once per bot). This module builds one bot's publishers and runs one tick with them; it
is the only farm module that imports posting, so a change in posting's internals is met here.

A tick, exactly once through a crash at any point (its unit may be re-run by another worker):
1. Each of the bot's `per_tick` posts is a numbered slot; `(bot, tick, slot, channel)` is unique.
2. One transaction records the slot's text as `pending` on every channel (and moves the bot's
   reader cursor), then each channel is published and the row marked `sent` with the remote id.
3. A re-run publishes the slots still `pending` (X's 403 "duplicate" proves the earlier attempt
   went out; the Telegram outbox key makes a second attempt a no-op) and makes missing slots.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward.farm import reader
from steward.farm.bots import Bot
from steward.farm.store import farm_posts

log = logging.getLogger("steward.farm")

TRIES = 50


class TickError(Exception):
    """What stopped a bot's tick; `str()` is one sentence naming no secret."""


@dataclass
class Result:
    sent: int = 0
    waiting: int = 0
    failed: int = 0


def _publisher(network: str, chat: str, bot: Bot, tokens: dict, settings, outbox):
    from steward.posting import publishers
    from steward.posting.wiring import LazyClient

    if network == "dry-run":
        return publishers.DryRunPublisher(logging.getLogger(f"steward.farm.{bot.name}"))
    if network == "telegram":
        return publishers.TelegramChannelPublisher(outbox, chat)
    if network == "x":
        token, secret = tokens.get("x_access_token"), tokens.get("x_access_secret")
        keys = settings.x_consumer_key, settings.x_consumer_secret
        if not token or not secret:
            raise TickError(f"no X tokens: run python auth_tool.py x --bot {bot.name}")
        if None in keys:
            raise TickError("X_CONSUMER_KEY and X_CONSUMER_SECRET are not set")
        creds = (*(k.get_secret_value() for k in keys), token, secret)
        return publishers.XPublisher(LazyClient(*creds, api_url=settings.x_api_url))
    if network == "mastodon":
        return _mastodon(bot, tokens, settings)
    return _bluesky(bot, tokens, settings)


def _ask_for(bot: Bot, name: str, problem: str) -> TickError:
    return TickError(f"{problem}: run python bot.py bots secret {bot.name} {name}")


def _url(bot: Bot, name: str, value: str | None) -> str | None:
    from steward.config.fields import http_url

    try:
        return http_url(value)
    except ValueError:
        raise _ask_for(bot, name, f"{name} is not an http(s) URL") from None


def _mastodon(bot: Bot, tokens: dict, settings):
    """The bot's Mastodon account: its own instance (`mastodon_api_url`), else the worker's
    MASTODON_API_URL (many bots on one instance), and its `mastodon_access_token`."""
    from steward.posting.mastodon import MastodonPublisher

    token = tokens.get("mastodon_access_token")
    api_url = tokens.get("mastodon_api_url") or settings.mastodon_api_url
    if not token:
        raise _ask_for(bot, "mastodon_access_token", "no Mastodon access token")
    if not api_url:
        raise _ask_for(bot, "mastodon_api_url", "no Mastodon instance")
    return MastodonPublisher(_url(bot, "mastodon_api_url", api_url), token)


def _bluesky(bot: Bot, tokens: dict, settings):
    """The bot's Bluesky account: `bluesky_handle` and `bluesky_app_password`, on its own PDS
    (`bluesky_api_url`) or the worker's BLUESKY_API_URL (https://bsky.social by default)."""
    from steward.posting.bluesky import BlueskyPublisher

    handle, password = tokens.get("bluesky_handle"), tokens.get("bluesky_app_password")
    if not handle:
        raise _ask_for(bot, "bluesky_handle", "no Bluesky handle")
    if not password:
        raise _ask_for(bot, "bluesky_app_password", "no Bluesky app password")
    api_url = tokens.get("bluesky_api_url") or settings.bluesky_api_url
    return BlueskyPublisher(_url(bot, "bluesky_api_url", api_url), handle.lstrip("@"), password)


def publishers_key(bot: Bot, tokens: dict) -> str:
    """Changes when the bot's targets or tokens change (a hash: safe to keep in memory)."""
    raw = "\0".join([bot.name, *bot.targets, *(f"{k}={v}" for k, v in sorted(tokens.items()))])
    return hashlib.sha256(raw.encode()).hexdigest()


def build_publishers(bot: Bot, tokens: dict, *, settings, outbox) -> dict:
    """Target -> publisher for one bot. Worth keeping between ticks: X's publisher learns the
    account's @name once (one API call) for its links."""
    out = {}
    for target in bot.targets:
        network, _, chat = target.partition(":")
        out[target] = _publisher(network, chat, bot, tokens, settings, outbox)
    return out


class BotTick:
    """One bot's tick at `at` (blocking; run in a worker thread)."""

    def __init__(
        self, bot: Bot, publishers: dict, *, settings, engine: Engine, outbox, clock
    ) -> None:
        self.bot, self.settings, self.engine, self.clock = bot, settings, engine, clock
        self.publishers = publishers
        self.rng = random.Random()

    def run(self, at: dt.datetime) -> Result:
        """Raises TickError after trying every channel: one refusing does not hold the others."""
        result, errors = Result(), []
        done = self._slots(at)
        for post_id, text, channel in self._pending(at):
            errors.append(self._send(post_id, text, channel, result, retry=True))
        for slot in range(self.bot.per_tick):
            if slot in done:
                continue
            channels = self._within_cap(list(self.publishers))
            if not channels:
                errors.append(f"the monthly cap of {self.bot.monthly_limit} X posts is reached")
                break
            try:
                ids, text = self._claim(at, slot, channels)
            except sa.exc.IntegrityError:
                continue  # a worker whose lease ran out made this slot meanwhile
            for channel, post_id in ids.items():
                errors.append(self._send(post_id, text, channel, result))
        if found := list(dict.fromkeys(e for e in errors if e)):
            raise TickError("; ".join(found))
        return result

    # -- steps -----------------------------------------------------------------------------

    def _slots(self, at) -> set[int]:
        query = sa.select(farm_posts.c.slot).where(
            farm_posts.c.bot == self.bot.name, farm_posts.c.tick == at
        )
        with self.engine.connect() as conn:
            return set(conn.scalars(query))

    def _pending(self, at) -> list[tuple[int, str, str]]:
        query = sa.select(farm_posts.c.id, farm_posts.c.text, farm_posts.c.channel).where(
            farm_posts.c.bot == self.bot.name, farm_posts.c.state == "pending"
        )
        with self.engine.connect() as conn:
            return [
                (r.id, r.text, r.channel) for r in conn.execute(query.order_by(farm_posts.c.id))
            ]

    def _within_cap(self, channels: list[str]) -> list[str]:
        if "x" not in channels or not self.bot.monthly_limit:
            return channels
        month = self.clock().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        query = sa.select(sa.func.count()).where(
            farm_posts.c.bot == self.bot.name,
            farm_posts.c.channel == "x",
            farm_posts.c.state.in_(("pending", "sent")),
            farm_posts.c.created_at >= month,
        )
        with self.engine.connect() as conn:
            if (conn.scalar(query) or 0) < self.bot.monthly_limit:
                return channels
        return [c for c in channels if c != "x"]

    def _claim(self, at, slot, channels) -> tuple[dict[str, int], str]:
        """Compose a text this bot never posted and record it pending, with the cursor move."""
        with self.engine.begin() as conn:
            words, cursor = self._words(conn)
            text = self._compose(conn, words, channels)
            ids = {}
            for channel in channels:
                row = {
                    "bot": self.bot.name,
                    "text": text,
                    "text_hash": _hash(text),
                    "channel": channel,
                    "state": "pending",
                    "tick": at,
                    "slot": slot,
                    "created_at": self.clock(),
                }
                ids[channel] = conn.execute(
                    sa.insert(farm_posts).values(**row)
                ).inserted_primary_key[0]
            if cursor is not None:
                reader.advance(conn, self.bot.name, cursor)
        return ids, text

    def _words(self, conn) -> tuple[list[str], int | None]:
        from steward.posting.sources import BundledSource, FeedSource, SourceError, WordListSource

        try:
            if self.bot.words is not None:
                return WordListSource(self.bot.words).words(), None
            if self.bot.feed_url is not None:
                return FeedSource(self.bot.feed_url).words(), None
        except SourceError as exc:
            raise TickError(str(exc)) from None
        words, cursor = reader.draw(conn, self.bot.name)
        return (words or BundledSource().words()), cursor

    def _compose(self, conn, words: list[str], channels: list[str]) -> str:
        from steward.posting.templates import TemplateError, WordPicker, parse_template
        from steward.posting.textcount import fits

        template = parse_template(self.bot.template)
        picker = WordPicker(words)
        networks = [c.partition(":")[0] for c in channels]
        for _ in range(TRIES):
            try:
                text = template.render(picker, self.rng).strip()
            except TemplateError:
                continue
            if not text or not all(fits(text, n) for n in networks if n != "dry-run"):
                continue
            used = conn.scalar(
                sa.select(sa.func.count()).where(
                    farm_posts.c.bot == self.bot.name, farm_posts.c.text_hash == _hash(text)
                )
            )
            if not used:
                return text
        raise TickError(f"could not make a new post after {TRIES} tries: the words may be used up")

    def _send(
        self, post_id: int, text: str, channel: str, result: Result, retry: bool = False
    ) -> str | None:
        """Publish one recorded post; returns what stopped it, if anything."""
        from steward.posting.publishers import PublishError

        publisher = self.publishers.get(channel)
        if publisher is None:  # a target removed since the post was recorded
            self._finish(post_id, "failed", error=f"{channel} is no longer a target")
            result.failed += 1
            return None
        try:
            published = publisher.publish(text, f"farm-{post_id}")
        except PublishError as exc:
            if exc.duplicate and retry:
                self._finish(post_id, "sent")  # the earlier attempt went out before a crash
                result.sent += 1
                return None
            if exc.permanent or exc.duplicate:
                self._finish(post_id, "failed", error=exc.reason)
                result.failed += 1
                return f"{channel} refused a post: {exc.reason}"
            result.waiting += 1
            return f"{channel}: {exc.reason} (the post waits for the next tick)"
        self._finish(post_id, "sent", remote_id=published.remote_id)
        result.sent += 1
        return None

    def _finish(self, post_id: int, state: str, **values) -> None:
        if state == "sent":
            values["sent_at"] = self.clock()
        query = sa.update(farm_posts).where(
            farm_posts.c.id == post_id, farm_posts.c.state == "pending"
        )
        with self.engine.begin() as conn:
            conn.execute(query.values(state=state, **values))


def _hash(text: str) -> str:
    from steward.posting.store import text_hash

    return text_hash(text)
