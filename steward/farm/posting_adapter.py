"""The one seam between the farm and posting: one bot's `Poster`, built from its row and tokens.

Posting owns templates, word sources, publishers, text rules and the `posts` table with its
exactly-once machinery (in-flight claims, recovery, 429/5xx retries, X's "duplicate" as proof
only after an attempt of ours, a refused credential pausing a channel, the owner told once per
problem). The farm owns which bot runs when and its tokens. This module turns a bot's row and
decrypted tokens into posting's `Parts` and a per-bot settings view, and runs one tick:
1. posts the bot left pending (their claimant gone) are published first (recovery.reconcile);
2. then `Poster.run_tick(at, want=bot.per_tick)`: each post recorded pending before it is
   published, in the bot's own rows of `posts`, with its own `state` keys (store.bot_key).
A tick re-run after a crash (its unit's lease ran out) finds its slots taken and makes none
twice. Other farm modules only read posting's table (a bot's stats) or check a template; what
a tick does through posting is met here, so a change in posting's internals is met here too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from steward.farm.bots import Bot
from steward.posting.reader import SharedTimelineSource

if TYPE_CHECKING:
    from steward.posting.poster import Poster
    from steward.posting.wiring import Parts

log = logging.getLogger("steward.farm")


class TickError(Exception):
    """What stopped a bot's tick before it began; `str()` is one sentence naming no secret."""


@dataclass
class Result:
    sent: int = 0
    error: str | None = None  # why the tick made fewer posts than wanted, if it did
    told: bool = False  # posting told the owner itself (the farm says nothing more)


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


# The command that sets a network's account for a bot: the sign-in flow, which checks it.
AUTH_COMMAND = {
    "mastodon": "python auth_tool.py mastodon --bot {bot}",
    "bluesky": "python auth_tool.py bluesky --bot {bot}",
}


def _ask_for(bot: Bot, name: str, problem: str) -> TickError:
    network = name.partition("_")[0]
    command = AUTH_COMMAND.get(network, "python bot.py bots secret {bot} " + name)
    return TickError(f"{problem}: run {command.format(bot=bot.name)}")


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
    """Changes when the bot's spec or tokens change (a hash: safe to keep in memory)."""
    spec = {k: v for k, v in bot.spec().items() if k != "paused"}
    raw = "\0".join([repr(sorted(spec.items())), *(f"{k}={v}" for k, v in sorted(tokens.items()))])
    return hashlib.sha256(raw.encode()).hexdigest()


class BotWords:
    """A farm bot's words for one tick: its own list or feed, else the shared reader's timeline
    (the bundled words while the reader brought none), whose cursor moves with the post made
    from them (Poster calls `recorded`), as main's does."""

    def __init__(self, bot: Bot, engine: Engine) -> None:
        self.bot = bot
        self.timeline = SharedTimelineSource(engine, bot.name)

    def words(self) -> list[str]:
        from steward.posting.sources import BundledSource, FeedSource, WordListSource

        if self.bot.words is not None:
            return WordListSource(self.bot.words).words()
        if self.bot.feed_url is not None:
            return FeedSource(self.bot.feed_url).words()
        return self.timeline.words() or BundledSource().words()

    def recorded(self, conn: Connection) -> None:
        if self.bot.reads_timeline:
            self.timeline.recorded(conn)


def bot_settings(settings, bot: Bot):
    """The worker's settings as this bot's posting sees them: its interval, posts per tick and
    monthly cap; no times of day or jitter (the farm's units say when a tick is due)."""
    return settings.model_copy(
        update={
            "post_template": bot.template,
            "post_interval": bot.interval_min,
            "tweets_per_tick": bot.per_tick,
            "post_monthly_limit": bot.monthly_limit,
            "post_at": None,
            "post_jitter": None,
            "post_words": bot.words,
            "post_feed_url": bot.feed_url,
        }
    )


def build_parts(bot: Bot, tokens: dict, *, settings, outbox, engine: Engine) -> Parts:
    """Posting's `Parts` for one bot: its template, words and one publisher per target."""
    from steward.posting.templates import TemplateError, parse_template
    from steward.posting.wiring import Parts, credentials_fingerprint

    try:
        template = parse_template(bot.template)
    except TemplateError as exc:
        raise TickError(f"the template: {exc}") from None
    publishers, fingerprints, fixes = {}, {}, {}
    for target in bot.targets:
        network, _, chat = target.partition(":")
        publishers[target] = _publisher(network, chat, bot, tokens, settings, outbox)
        if network in CREDENTIALS:  # a refusal pauses the target until these change
            names, command = CREDENTIALS[network]
            secret = [f"{k}={v}" for k, v in sorted(tokens.items()) if k.startswith(network)]
            if network == "x" and settings.x_consumer_key is not None:
                secret.append(settings.x_consumer_key.get_secret_value())
            fingerprints[target] = credentials_fingerprint(tuple(secret), target)
            verb = "changes" if len(names) == 1 else "change"
            fixes[target] = (
                f"its {' and '.join(names)} {verb} (<code>{command.format(bot=bot.name)}</code>)"
            )
    return Parts(
        template, f"a {template.kind} template", lambda _tick: BotWords(bot, engine),
        f"bot {bot.name}'s words", publishers, fingerprints.get("x"), fingerprints, fixes,
    )  # fmt: skip


# Per network: the bot's secrets its credentials are, and the command that replaces them.
CREDENTIALS = {
    "x": (("x_access_token", "x_access_secret"), "python auth_tool.py x --bot {bot}"),
    "mastodon": (("mastodon_access_token",), AUTH_COMMAND["mastodon"]),
    "bluesky": (("bluesky_handle", "bluesky_app_password"), AUTH_COMMAND["bluesky"]),
}


def build_poster(bot: Bot, tokens: dict, *, settings, engine: Engine, outbox, clock) -> Poster:
    """One bot's Poster: worth keeping between ticks (X's publisher learns the account's @name
    once, one API call, for its links); rebuild it when `publishers_key` changes."""
    from steward.posting.poster import Poster

    view = bot_settings(settings, bot)
    parts = build_parts(bot, tokens, settings=settings, outbox=outbox, engine=engine)
    return Poster(view, engine, outbox, clock, parts=parts, bot=bot.name)


def run_tick(poster: Poster, bot: Bot, at: dt.datetime) -> Result:
    """One tick of a bot (blocking; run in a worker thread): what its last tick left pending,
    then `bot.per_tick` new posts."""
    from steward.posting import recovery
    from steward.posting.compose import ComposeError
    from steward.posting.sources import SourceError

    poster.told = False
    try:
        recovery.reconcile(poster)
        told = poster.told  # a refusal met by a waiting post is said there
        outcomes = poster.run_tick(at, want=bot.per_tick)
    except (ComposeError, SourceError) as exc:
        raise TickError(str(exc)) from None
    errors = [
        f"{o.channel} refused a post: {o.error}"
        for o in outcomes
        if o.state == "failed" and o.error != "duplicate"
    ]
    # A channel held after the tick (refused credentials, a rate limit, the cap) is said the
    # same way at every tick while it lasts, so the owner hears of it once.
    held = poster.blocked()
    errors += held.values()
    problem = poster.problem
    if problem and not problem.startswith(("nothing posted", *(f"{c}:" for c in held))):
        errors.append(problem)
    errors = list(dict.fromkeys(errors))
    sent = sum(o.state == "sent" for o in outcomes)
    return Result(sent, "; ".join(errors) or None, told or poster.told)
