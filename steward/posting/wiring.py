"""Posting's parts built from the settings: template, word sources and publishers.

Everything that can be wrong in the posting configuration is found here, when the worker (or
`python bot.py post`) starts, and raised as `ConfigError` naming the variable, so a broken
POST_TEMPLATE stops the process with one line instead of failing at the first tick.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from steward.config import ConfigError, Settings
from steward.features import Clock
from steward.posting import store
from steward.posting.publishers import (
    DryRunPublisher,
    Publisher,
    TelegramChannelPublisher,
    XPublisher,
)
from steward.posting.reader import SharedTimelineSource
from steward.posting.sources import (
    BundledSource,
    FeedSource,
    MergedSource,
    SourceError,
    WordListSource,
    WordSource,
    russian_nouns_available,
)
from steward.posting.templates import Template, TemplateError, WordPicker, parse_template
from steward.posting.textcount import fits, x_length

log = logging.getLogger("steward.posting")
SHORTEST_TRIES = 20  # renders of a grammar with one-letter words to find its shortest text
_CYRILLIC = re.compile("[\u0400-\u04ff]")

# Two words per post: the bundled list alone gives tens of thousands of different posts.
DEFAULT_TEMPLATE = "{Word} and {word2}: a fine pair for today."
X_VARIABLES = ("X_CONSUMER_KEY", "X_CONSUMER_SECRET", "X_ACCESS_TOKEN", "X_ACCESS_SECRET")
SHOWN = {"x": "X", "telegram": "Telegram", "mastodon": "Mastodon", "bluesky": "Bluesky"}
# Per network: the variables that hold its credentials, and the auth_tool.py subcommand.
CREDENTIALS = {
    "x": (X_VARIABLES, "x"),
    "mastodon": (("MASTODON_ACCESS_TOKEN",), "mastodon"),
    "bluesky": (("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD"), "bluesky"),
}
DRY_RUN_HINT = f"dry-run: set {', '.join(X_VARIABLES)} to post to X"


@dataclass
class Parts:
    template: Template
    template_shown: str  # for the summary: "default", "printf", "tracery", ...
    # The word source for one tick (a source with `recorded(conn)` moves its cursor when a post
    # made from its words is recorded).
    words: Callable[[dt.datetime], WordSource]
    words_shown: str
    publishers: dict[str, Publisher]  # channel name -> publisher, in publishing order
    x_fingerprint: str | None  # identifies the X credentials without revealing them
    # Each network's credentials' fingerprint: a refusal pauses the channel until they change.
    fingerprints: dict[str, str] = field(default_factory=dict)
    # Per channel, what must change when its credentials are refused (HTML): a farm bot's own
    # command. Main's (none here) names its variables and auth_tool.py (problems.refused).
    credentials_fix: dict[str, str] = field(default_factory=dict)


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
    words, words_shown = _word_sources(settings, engine)
    publishers: dict[str, Publisher] = {}
    fingerprint = None
    credentials = _x_credentials(settings)
    if credentials is not None:
        fingerprint = credentials_fingerprint(credentials, settings.x_api_url)
        client = LazyClient(*credentials, api_url=settings.x_api_url)
        account = StateCache(engine, f"posting.x.account:{fingerprint}", clock)
        publishers["x"] = XPublisher(client, account)
    if settings.post_telegram_chat:
        publishers["telegram"] = TelegramChannelPublisher(outbox, settings.post_telegram_chat)
    fingerprints = {"x": fingerprint} if fingerprint else {}
    for publisher, secret_fingerprint in _fediverse(settings):
        publishers[publisher.name] = publisher
        fingerprints[publisher.name] = secret_fingerprint
    if not publishers:
        publishers["dry-run"] = DryRunPublisher()
    _check_fits(template, list(publishers))
    warn_russian(settings, raw)
    return Parts(template, shown, words, words_shown, publishers, fingerprint, fingerprints)


def _fediverse(settings: Settings) -> list[tuple[Publisher, str]]:
    """Mastodon and Bluesky publishers, when both of each one's variables are set."""
    from steward.posting.bluesky import BlueskyPublisher
    from steward.posting.mastodon import MastodonPublisher

    out: list[tuple[Publisher, str]] = []
    url, token = settings.mastodon_api_url, settings.mastodon_access_token
    if (url is None) != (token is None):
        name = "MASTODON_API_URL" if url is None else "MASTODON_ACCESS_TOKEN"
        raise ConfigError(name, "is not set, while the other Mastodon variable is", "both")
    if url and token:
        secret = token.get_secret_value()
        out.append((MastodonPublisher(url, secret), credentials_fingerprint((secret,), url)))
    handle, password = settings.bluesky_handle, settings.bluesky_app_password
    if (handle is None) != (password is None):
        name = "BLUESKY_HANDLE" if handle is None else "BLUESKY_APP_PASSWORD"
        raise ConfigError(name, "is not set, while the other Bluesky variable is", "both")
    if handle and password:
        secret, api = password.get_secret_value(), settings.bluesky_api_url
        publisher = BlueskyPublisher(api, handle.lstrip("@"), secret)
        out.append((publisher, credentials_fingerprint((handle, secret), api)))
    return out


class StateCache:
    """One value kept in the store's `state` table under `key` (an account name, say)."""

    def __init__(self, engine: Engine, key: str, clock: Clock) -> None:
        self.engine, self.key, self.clock = engine, key, clock

    def load(self) -> str | None:

        try:
            with self.engine.connect() as conn:
                return store.load_value(conn, self.key)
        except sa.exc.SQLAlchemyError:
            return None  # not migrated yet (a dry run's first look): ask the network

    def save(self, value: str) -> None:

        with self.engine.begin() as conn:
            store.save_value(conn, self.key, value, self.clock())


def _check_fits(template: Template, channels: list[str]) -> None:
    """A template whose shortest texts (one-letter words) fit no channel can never post: say so
    at start. One that fits only channels without X's 280 posts there (X is told at the tick)."""
    rng, shortest = random.Random(0), WordPicker(["a"])
    lengths = []
    for _ in range(SHORTEST_TRIES):
        try:
            text = template.render(shortest, rng).strip()
        except TemplateError:
            continue
        if any(fits(text, channel) for channel in channels):
            return
        lengths.append(x_length(text))
    if lengths:
        raise ConfigError(
            "POST_TEMPLATE",
            f"makes texts of at least {min(lengths)} characters even with one-letter words, "
            f"too long for {' and '.join(channels)}",
            "a template whose texts fit (X counts at most 280 characters)",
        )


def warn_russian(settings: Settings, raw: str | None) -> None:
    """Russian words without pymorphy3 go out as they are (verbs, adjectives): say so once."""
    sample = " ".join(filter(None, [raw, settings.post_words]))
    if _CYRILLIC.search(sample) and not russian_nouns_available():
        log.warning(
            "POST_TEMPLATE or POST_WORDS is Russian but pymorphy3 is not installed: words are "
            "used as they are, verbs and adjectives too; pip install 'steward[russian]' "
            "(or add pymorphy3 to requirements.txt) to keep only nouns"
        )


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
    settings: Settings, engine: Engine
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
    reads = reader_client(settings) is not None
    if reads:
        # The words the shared reader stored (steward/posting/reader.py), never X itself: the
        # reader's unit reads the timeline once per interval for main and the farm's bots alike.
        shown.append("the reader's timeline")
    if not fixed and not reads:
        return (lambda _tick: BundledSource()), "the bundled words"

    def words(tick: dt.datetime) -> WordSource:
        sources = list(fixed)
        if reads:
            sources.append(SharedTimelineSource(engine))
        return sources[0] if len(sources) == 1 else MergedSource(sources)

    return words, " + ".join(shown)


def reader_client(settings: Settings):
    """The reader account's X client, None without its tokens; ConfigError when half set."""
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
