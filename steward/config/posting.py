"""What the posting bot says, from which words, how often, and where beside X."""

from __future__ import annotations

from pydantic import field_validator

from steward.config.fields import SettingsPart, chat, env, http_url


class PostingSettings(SettingsPart):
    post_template: str | None = env(
        "POST_TEMPLATE",
        "template",
        expect="text with %s or {word} slots, or a Tracery grammar",
        default=None,
        description="What to post: printf `%s`, `{word}` or a Tracery grammar.",
    )
    post_interval: int = env(
        "POST_INTERVAL",
        "timeout",
        expect="minutes as a whole number, e.g. 30",
        default=30,
        ge=1,
        description="Minutes between posting ticks.",
    )
    post_at: str | None = env(
        "POST_AT",
        expect="times of day like 09:00,18:30 (in TZ)",
        default=None,
        description="Post at these times of day (in TZ) instead of every POST_INTERVAL.",
    )
    post_jitter: str | None = env(
        "POST_JITTER",
        expect="a span like 10m, 90s or 1h",
        default=None,
        description="Move each planned post by a random delay up to this span.",
    )
    tweet_grab: int = env(
        "TWEET_GRAB",
        "tweet_grab",
        expect="a whole number from 1 to 100",
        default=3,
        ge=1,
        le=100,
        description="Newest reader-timeline posts read per tick for words.",
    )
    tweets_per_tick: int = env(
        "TWEETS_PER_TICK",
        "tweets_per_tick",
        expect="a whole number from 1 to 50",
        default=1,
        ge=1,
        le=50,
        description="Posts published per tick.",
    )
    post_telegram_chat: str | None = env(
        "POST_TELEGRAM_CHAT",
        expect="a channel like @mychannel or a numeric chat id",
        default=None,
        description="Also publish posts to this Telegram channel.",
    )
    post_monthly_limit: int = env(
        "POST_MONTHLY_LIMIT",
        expect="a whole number, 0 for no cap",
        default=0,
        ge=0,
        description="Most posts to X per calendar month (X bills per post); 0 = no cap.",
    )
    post_words: str | None = env(
        "POST_WORDS",
        expect="words separated by commas or new lines, or a file path",
        default=None,
        description="Word list for templates (inline or a file).",
    )
    post_feed_url: str | None = env(
        "POST_FEED_URL",
        expect="an http(s) URL of an RSS or Atom feed",
        default=None,
        description="RSS/Atom feed whose words fill templates.",
    )

    @field_validator("post_telegram_chat")
    @classmethod
    def _chat_form(cls, v: str | None) -> str | None:
        return chat(v)

    @field_validator("post_feed_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return http_url(v)
