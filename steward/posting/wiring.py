"""Posting's parts built from the settings: template, word sources and publishers.

Everything that can be wrong in the posting configuration is found here, when the worker (or
`python bot.py post`) starts, and raised as `ConfigError` naming the variable, so a broken
POST_TEMPLATE stops the process with one line instead of failing at the first tick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from steward.config import ConfigError, Settings
from steward.features import Clock
from steward.posting.publishers import (
    DryRunPublisher,
    Publisher,
    TelegramChannelPublisher,
    XPublisher,
)
from steward.posting.sources import (
    BundledSource,
    FeedSource,
    MergedSource,
    SourceError,
    TimelineSource,
    WordListSource,
    WordSource,
)
from steward.posting.templates import Template, TemplateError, parse_template

# Two words per post: the bundled list alone gives tens of thousands of different posts.
DEFAULT_TEMPLATE = "{Word} and {word2}: a fine pair for today."
X_VARIABLES = ("X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_SECRET")
DRY_RUN_HINT = f"dry-run: set {', '.join(X_VARIABLES)} to post to X"


@dataclass
class Parts:
    template: Template
    template_shown: str  # for the summary: "default", "printf", "tracery", ...
    words: Callable[[dt.datetime], WordSource]  # the word source for one tick
    words_shown: str
    publishers: dict[str, Publisher]  # channel name -> publisher, in publishing order
    x_fingerprint: str | None  # identifies the X credentials without revealing them


def credentials_fingerprint(credentials: tuple[str, ...], api_url: str) -> str:
    """A short hash that changes when any credential changes; safe for logs and outbox keys."""
    digest = hashlib.sha256("\0".join((*credentials, api_url)).encode()).hexdigest()
    return digest[:16]


def build_parts(settings: Settings, outbox, engine: Engine, clock: Clock) -> Parts:
    """Parse the posting settings; raise ConfigError with the offending variable's name."""
    raw = settings.post_template
    try:
        template = parse_template(raw if raw is not None else DEFAULT_TEMPLATE)
    except TemplateError as exc:
        # The template's sentence already says what a slot looks like.
        raise ConfigError("POST_TEMPLATE", str(exc)) from None
    shown = "the default template" if raw is None else f"a {template.kind} template"
    words, words_shown = _word_sources(settings, engine, clock)
    publishers: dict[str, Publisher] = {}
    fingerprint = None
    credentials = _x_credentials(settings)
    if credentials is not None:
        fingerprint = credentials_fingerprint(credentials, settings.x_api_url)
        publishers["x"] = XPublisher(LazyClient(*credentials, api_url=settings.x_api_url))
    if settings.post_telegram_chat:
        publishers["telegram"] = TelegramChannelPublisher(outbox, settings.post_telegram_chat)
    if not publishers:
        publishers["dry-run"] = DryRunPublisher()
    return Parts(template, shown, words, words_shown, publishers, fingerprint)


def _x_credentials(settings: Settings) -> tuple[str, str, str, str] | None:
    values = (
        settings.x_consumer_key,
        settings.x_consumer_secret,
        settings.x_access_token,
        settings.x_access_secret,
    )
    missing = [name for name, value in zip(X_VARIABLES, values, strict=True) if value is None]
    if missing == list(X_VARIABLES[2:]):
        # The app's keys alone serve the reader and the farm's bots (steward/farm): main is dry.
        return None
    if missing and len(missing) < len(X_VARIABLES):
        # Three of four set is a half-finished setup: running dry would hide it.
        raise ConfigError(
            missing[0],
            "is not set, while the other X credentials are",
            f"all of {', '.join(X_VARIABLES)}, or none of them for a dry run",
        )
    return settings.x_credentials


def _word_sources(
    settings: Settings, engine: Engine, clock: Clock
) -> tuple[Callable[[dt.datetime], WordSource], str]:
    fixed: list[WordSource] = []
    shown: list[str] = []
    if settings.post_words:
        try:
            fixed.append(WordListSource(settings.post_words))
        except SourceError as exc:
            raise ConfigError("POST_WORDS", str(exc), "words separated by commas") from None
        shown.append("POST_WORDS")
    if settings.post_feed_url:
        fixed.append(FeedSource(settings.post_feed_url))
        shown.append("the feed")
    reader = _reader_client(settings)
    if reader is not None:
        shown.append("the reader's timeline")
    if not fixed and reader is None:
        return (lambda _tick: BundledSource()), "the bundled words"

    def words(tick: dt.datetime) -> WordSource:
        sources = list(fixed)
        if reader is not None:
            grab = settings.tweet_grab
            sources.append(TimelineSource(reader, engine, tick=tick, grab=grab, clock=clock))
        return sources[0] if len(sources) == 1 else MergedSource(sources)

    return words, " + ".join(shown)


def _reader_client(settings: Settings):
    token, secret = settings.x_reader_access_token, settings.x_reader_access_secret
    if token is None and secret is None:
        return None
    if token is None or secret is None:
        name = "X_READER_ACCESS_TOKEN" if token is None else "X_READER_ACCESS_SECRET"
        raise ConfigError(name, "is not set, while the other reader token is", "both or neither")
    if settings.x_consumer_key is None or settings.x_consumer_secret is None:
        raise ConfigError(
            "X_CONSUMER_KEY",
            "is not set, but the reader account's tokens are (reading needs the app's keys)",
            "the app's API key and secret",
        )
    return LazyClient(
        settings.x_consumer_key.get_secret_value(),
        settings.x_consumer_secret.get_secret_value(),
        token.get_secret_value(),
        secret.get_secret_value(),
        api_url=settings.x_api_url,
    )


class LazyClient:
    """X's tweepy Client, made on first use, so that importing tweepy and requests (a tenth of
    a second and some megabytes) happens in the first tick rather than at start-up."""

    def __init__(self, *credentials: str, api_url: str) -> None:
        self._credentials, self._api_url = credentials, api_url
        self._client = None

    def __getattr__(self, name: str):
        if self._client is None:
            from steward.posting.x_client import make_client

            self._client = make_client(*self._credentials, api_url=self._api_url)
        return getattr(self._client, name)
