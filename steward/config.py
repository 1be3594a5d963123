"""Every setting, read from the environment once at start: typed, validated and documented.

`Settings` is the only place that knows variable names. `load_settings()` reads the process
environment over an optional `.env` file (python-dotenv semantics; a real environment variable
always wins) and raises `ConfigError` with one sentence naming the variable and the expected form.
The seed bot's lowercase names (`consumer_key`, `template`, `timeout`, ...) are accepted as aliases.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from steward import db

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: "configuration error"

_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_CHAT = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$")
_USERNAME = re.compile(r"^@?[A-Za-z][A-Za-z0-9_]{3,31}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class ConfigError(Exception):
    """A configuration value the worker cannot run with; `str()` is the one line to print."""

    def __init__(self, variable: str, problem: str, expected: str = "") -> None:
        self.variable = variable
        line = f"{variable} {problem}"
        if expected:
            line += f"; expected {expected}"
        super().__init__(line)


def _env(name: str, *aliases: str, expect: str, secret: bool = False, **kw: Any) -> Any:
    """A field read from `name` (or a seed alias), with the expected form kept for error lines."""
    extra = {"env": name, "expect": expect, "secret": secret}
    return Field(validation_alias=AliasChoices(name, *aliases), json_schema_extra=extra, **kw)


def _split_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in re.split(r"[,\s]+", str(value)) if part.strip()]


class Settings(BaseSettings):
    """The worker's configuration. Attribute names are the lowercase variable names."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")

    # Telegram
    telegram_token: SecretStr | None = _env(
        "TELEGRAM_TOKEN",
        expect="the bot token from @BotFather, like 123456:ABC-DEF",
        secret=True,
        default=None,
        description="Bot token from @BotFather. Without it, messages go to the log.",
    )
    telegram_chat_id: str | None = _env(
        "TELEGRAM_CHAT_ID",
        expect="a numeric chat id (groups are negative) or @channelname",
        default=None,
        description="Where notifications go (`python auth_tool.py telegram` finds it).",
    )
    allowed_users: tuple[int | str, ...] = _env(
        "ALLOWED_USERS",
        expect="numeric user ids or @usernames separated by commas",
        default=(),
        description="Who may use commands: numeric ids (preferred) or @usernames.",
    )
    allow_groups: bool = _env(
        "ALLOW_GROUPS",
        expect="true or false",
        default=False,
        description="Also answer allowed users' commands in group chats.",
    )
    telegram_api_url: str = _env(
        "TELEGRAM_API_URL",
        expect="an http(s) URL such as https://api.telegram.org",
        default="https://api.telegram.org",
        description="Bot API server: a self-hosted one, or a test fake.",
    )
    webhook_url: str | None = _env(
        "WEBHOOK_URL",
        expect="the public https URL of this app, like https://app.herokuapp.com",
        default=None,
        description="Receive updates by webhook at this URL instead of polling.",
    )
    webhook_secret: SecretStr | None = _env(
        "WEBHOOK_SECRET",
        expect="1-256 characters of A-Z a-z 0-9 _ -",
        secret=True,
        default=None,
        description="Secret Telegram sends with each webhook request.",
    )
    port: int = _env(
        "PORT",
        expect="a TCP port number",
        default=8080,
        ge=1,
        le=65535,
        description="Port the webhook listens on (Heroku sets it for web dynos).",
    )
    telegram_rate_per_chat: float = _env(
        "TELEGRAM_RATE_PER_CHAT",
        expect="messages per second, e.g. 1",
        default=1.0,
        gt=0,
        description="Outbox limit per private chat, messages per second.",
    )
    telegram_rate_per_group: int = _env(
        "TELEGRAM_RATE_PER_GROUP",
        expect="messages per minute, e.g. 20",
        default=20,
        gt=0,
        description="Outbox limit per group or channel, messages per minute.",
    )
    telegram_rate_global: int = _env(
        "TELEGRAM_RATE_GLOBAL",
        expect="messages per second, e.g. 30",
        default=30,
        gt=0,
        description="Outbox limit over all chats, messages per second.",
    )

    # Store, logs, time
    database_url: SecretStr = _env(
        "DATABASE_URL",
        expect="a URL like postgres://user:pass@host/db or sqlite:///file.sqlite",
        secret=True,
        default=SecretStr(db.DEFAULT_DATABASE_URL),
        description="The store. Heroku Postgres sets it; default a SQLite file here.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _env(
        "LOG_LEVEL",
        expect="DEBUG, INFO, WARNING or ERROR",
        default="INFO",
        description="How much the worker logs.",
    )
    tz: ZoneInfo = _env(
        "TZ",
        expect="an IANA time zone such as Europe/Berlin",
        default=ZoneInfo("UTC"),
        description="Time zone for times in messages and charts.",
    )

    # X (Twitter)
    x_consumer_key: SecretStr | None = _env(
        "X_CONSUMER_KEY",
        "consumer_key",
        expect="the app's API key",
        secret=True,
        default=None,
        description="X app API key (consumer key).",
    )
    x_consumer_secret: SecretStr | None = _env(
        "X_CONSUMER_SECRET",
        "consumer_secret",
        expect="the app's API secret",
        secret=True,
        default=None,
        description="X app API secret (consumer secret).",
    )
    x_access_token: SecretStr | None = _env(
        "X_ACCESS_TOKEN",
        "user_access_token",
        expect="an access token from auth_tool.py x",
        secret=True,
        default=None,
        description="The posting account's access token.",
    )
    x_access_secret: SecretStr | None = _env(
        "X_ACCESS_SECRET",
        "user_access_secret",
        expect="an access secret from auth_tool.py x",
        secret=True,
        default=None,
        description="The posting account's access secret.",
    )
    x_reader_access_token: SecretStr | None = _env(
        "X_READER_ACCESS_TOKEN",
        expect="an access token from auth_tool.py x --reader",
        secret=True,
        default=None,
        description="Reader account whose timeline gives words.",
    )
    x_reader_access_secret: SecretStr | None = _env(
        "X_READER_ACCESS_SECRET",
        expect="an access secret from auth_tool.py x --reader",
        secret=True,
        default=None,
        description="Reader account's access secret.",
    )
    x_api_url: str = _env(
        "X_API_URL",
        expect="an http(s) URL such as https://api.twitter.com",
        default="https://api.twitter.com",
        description="X API server (a test fake in tests).",
    )

    # Posting
    post_template: str | None = _env(
        "POST_TEMPLATE",
        "template",
        expect="text with %s or {word} slots, or a Tracery grammar",
        default=None,
        description="What to post: printf `%s`, `{word}` or a Tracery grammar.",
    )
    post_interval: int = _env(
        "POST_INTERVAL",
        "timeout",
        expect="minutes as a whole number, e.g. 30",
        default=30,
        ge=1,
        description="Minutes between posting ticks.",
    )
    tweet_grab: int = _env(
        "TWEET_GRAB",
        "tweet_grab",
        expect="a whole number from 1 to 100",
        default=3,
        ge=1,
        le=100,
        description="Newest reader-timeline posts read per tick for words.",
    )
    tweets_per_tick: int = _env(
        "TWEETS_PER_TICK",
        "tweets_per_tick",
        expect="a whole number from 1 to 50",
        default=1,
        ge=1,
        le=50,
        description="Posts published per tick.",
    )
    post_telegram_chat: str | None = _env(
        "POST_TELEGRAM_CHAT",
        expect="a channel like @mychannel or a numeric chat id",
        default=None,
        description="Also publish posts to this Telegram channel.",
    )
    post_monthly_limit: int = _env(
        "POST_MONTHLY_LIMIT",
        expect="a whole number, 0 for no cap",
        default=0,
        ge=0,
        description="Most posts to X per calendar month (X bills per post); 0 = no cap.",
    )
    post_words: str | None = _env(
        "POST_WORDS",
        expect="words separated by commas or new lines, or a file path",
        default=None,
        description="Word list for templates (inline or a file).",
    )
    post_feed_url: str | None = _env(
        "POST_FEED_URL",
        expect="an http(s) URL of an RSS or Atom feed",
        default=None,
        description="RSS/Atom feed whose words fill templates.",
    )

    # Training runs
    training_update_every: int = _env(
        "TRAINING_UPDATE_EVERY",
        expect="seconds as a whole number, e.g. 60",
        default=60,
        ge=1,
        description="Seconds between progress edits of a run's message.",
    )
    training_stall_after: int = _env(
        "TRAINING_STALL_AFTER",
        expect="seconds as a whole number, e.g. 300",
        default=300,
        ge=10,
        description="Seconds of silence before a run is reported stalled.",
    )

    # Monitoring
    checks: str | None = _env(
        "CHECKS",
        expect="checks like `api=https://example.com/health` or a JSON list",
        default=None,
        description="Monitoring checks (compact form or JSON).",
    )
    checks_file: str | None = _env(
        "CHECKS_FILE",
        expect="a path to a .toml or .json file of checks",
        default=None,
        description="Monitoring checks from a TOML or JSON file.",
    )
    check_interval: int = _env(
        "CHECK_INTERVAL",
        expect="seconds as a whole number, e.g. 60",
        default=60,
        ge=5,
        description="Default seconds between runs of a check.",
    )
    samples_retention_days: int = _env(
        "SAMPLES_RETENTION_DAYS",
        expect="days as a whole number, e.g. 30",
        default=30,
        ge=1,
        description="Days raw check samples are kept (hourly rollups stay longer).",
    )

    # Dialogs
    dialog_timeout: int = _env(
        "DIALOG_TIMEOUT",
        expect="seconds as a whole number, e.g. 600",
        default=600,
        ge=10,
        description="Seconds a question in a dialog waits for an answer.",
    )

    # Farm
    steward_secret_key: SecretStr | None = _env(
        "STEWARD_SECRET_KEY",
        expect="Fernet keys separated by commas, newest first (see README: The farm)",
        secret=True,
        default=None,
        description="Encrypts farm bots' tokens in the store; old keys after the new one.",
    )

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        # load_settings() gathers the environment and .env itself (see there), so the
        # model reads only what it is given: tests and the worker build it the same way.
        return (init_settings,)

    @field_validator("telegram_token", "webhook_secret", "steward_secret_key", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("steward_secret_key")
    @classmethod
    def _fernet_keys(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        for key in v.get_secret_value().split(","):
            try:
                raw = base64.urlsafe_b64decode(key.strip().encode())
            except (ValueError, binascii.Error):
                raw = b""
            if len(raw) != 32:
                raise ValueError("holds a value that is not a Fernet key")
        return v

    @field_validator("telegram_token")
    @classmethod
    def _token_form(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _BOT_TOKEN.match(v.get_secret_value().strip()):
            raise ValueError("is not a bot token")
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _secret_form(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not _WEBHOOK_SECRET.match(v.get_secret_value()):
            raise ValueError("has characters Telegram does not accept")
        return v

    @field_validator("telegram_chat_id", "post_telegram_chat")
    @classmethod
    def _chat_form(cls, v: str | None) -> str | None:
        if v is not None and not _CHAT.match(v.strip()):
            raise ValueError("is not a chat id")
        return v.strip() if v else None

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _users(cls, v: Any) -> tuple[int | str, ...]:
        users: list[int | str] = []
        for part in _split_list(v):
            if re.fullmatch(r"\d+", part):
                users.append(int(part))
            elif _USERNAME.match(part):
                users.append(part.lstrip("@").lower())
            else:
                raise ValueError(f"has {part!r}, which is neither a user id nor a @username")
        return tuple(users)

    @field_validator("database_url", mode="before")
    @classmethod
    def _database(cls, v: Any) -> Any:
        raw = v.get_secret_value() if isinstance(v, SecretStr) else str(v or "")
        if not raw.strip():
            return SecretStr(db.DEFAULT_DATABASE_URL)
        db.normalize_url(raw)  # raises ValueError with the reason
        return SecretStr(raw.strip())

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        return str(v).strip().upper()

    @field_validator("tz", mode="before")
    @classmethod
    def _zone(cls, v: Any) -> ZoneInfo:
        if isinstance(v, ZoneInfo):
            return v
        name = str(v).strip().lstrip(":") or "UTC"
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone") from None

    @field_validator("telegram_api_url", "x_api_url", "webhook_url", "post_feed_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not re.match(r"^https?://[^\s/]+", v.strip()):
            raise ValueError("is not an http(s) URL")
        return v.strip().rstrip("/")

    # Derived facts features ask about.
    @property
    def x_credentials(self) -> tuple[str, str, str, str] | None:
        parts = (
            self.x_consumer_key,
            self.x_consumer_secret,
            self.x_access_token,
            self.x_access_secret,
        )
        if any(p is None for p in parts):
            return None
        return tuple(p.get_secret_value() for p in parts)  # type: ignore[union-attr,return-value]

    @property
    def database(self) -> str:
        return self.database_url.get_secret_value()

    def effective_webhook_secret(self) -> str | None:
        """WEBHOOK_SECRET, or one derived from the token so every dyno agrees without config."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if self.telegram_token is None:
            return None
        token = self.telegram_token.get_secret_value()
        return hashlib.sha256(f"steward-webhook:{token}".encode()).hexdigest()[:48]

    def secrets(self) -> list[str]:
        """Every secret value this configuration holds (for log redaction)."""
        found: list[str] = [self.effective_webhook_secret() or ""]
        for name in type(self).model_fields:
            value = getattr(self, name)
            # Of DATABASE_URL only the password is secret: a log line may name the store.
            if isinstance(value, SecretStr) and name != "database_url":
                found.append(value.get_secret_value())
        password = db.normalize_url(self.database).password
        if password:
            # As parsed, and as it may stand percent-encoded in the URL itself.
            found += [str(password), quote(str(password), safe=""), quote_plus(str(password))]
        return [s for s in found if s and len(s) >= 4 and s != db.DEFAULT_DATABASE_URL]


def variables() -> dict[str, dict[str, Any]]:
    """Every documented variable: name -> {field, default, description, expect, secret}."""
    out = {}
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra or {}
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        out[extra["env"]] = {
            "field": name,
            "default": default,
            "description": field.description,
            "expect": extra["expect"],
            "secret": extra["secret"],
        }
    return out


def _alias_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        names.update(str(c) for c in field.validation_alias.choices)  # type: ignore[union-attr]
    return names


def gather(environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"):
    """The raw values: `.env` first, then the real environment on top (it always wins)."""
    from dotenv import dotenv_values

    source: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        source.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    source.update(os.environ if environ is None else environ)
    # The seed named its reader account: reader_name=alice, alice_access_token=..., ...
    reader = source.get("reader_name", "").strip()
    if reader:
        for ours, theirs in (
            ("X_READER_ACCESS_TOKEN", "access_token"),
            ("X_READER_ACCESS_SECRET", "access_secret"),
        ):
            if ours not in source and f"{reader}_{theirs}" in source:
                source[ours] = source[f"{reader}_{theirs}"]
    known = _alias_names()
    # An empty value means "not set" (a copied .env.example, `docker --env-file` with KEY=).
    return {k: v for k, v in source.items() if k in known and v.strip() != ""}


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env", **overrides
) -> Settings:
    """Build the one Settings object, or raise ConfigError with the line to print."""
    values: dict[str, Any] = gather(environ, env_file)
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise _first_error(exc, values) from None


def _first_error(exc: ValidationError, values: Mapping[str, Any]) -> ConfigError:
    error = exc.errors()[0]
    given = str(error["loc"][0]) if error["loc"] else ""
    owner = {
        str(alias): name
        for name, field in Settings.model_fields.items()
        for alias in field.validation_alias.choices  # type: ignore[union-attr]
    }
    field = owner.get(given, given)
    docs = {v["field"]: (k, v) for k, v in variables().items()}
    if field not in docs:
        return ConfigError("configuration", "is not valid: " + error["msg"])
    env, doc = docs[field]
    problem = str(error["msg"])
    if problem.startswith("Value error, "):
        problem = problem.removeprefix("Value error, ")
    elif error["type"] in ("int_parsing", "float_parsing", "bool_parsing", "literal_error"):
        problem = "is not valid"
    else:
        problem = "is out of range: " + problem[0].lower() + problem[1:]
    shown = "" if doc["secret"] else f"={str(values.get(given, ''))[:60]!r}"
    name = f"{given}{shown}" if given == env else f"{given}{shown} (alias of {env})"
    return ConfigError(name, problem, doc["expect"])
