"""The bot's settings: token, where notifications go, who may talk to it, and Telegram's limits."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pydantic import SecretStr, field_validator

from steward.config.fields import SettingsPart, chat, env, http_url, split_list

_BOT_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_USERNAME = re.compile(r"^@?[A-Za-z][A-Za-z0-9_]{3,31}$")
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class TelegramSettings(SettingsPart):
    telegram_token: SecretStr | None = env(
        "TELEGRAM_TOKEN",
        expect="the bot token from @BotFather, like 123456:ABC-DEF",
        secret=True,
        default=None,
        description="Bot token from @BotFather. Without it, messages go to the log.",
    )
    telegram_chat_id: str | None = env(
        "TELEGRAM_CHAT_ID",
        expect="a numeric chat id (groups are negative) or @channelname",
        default=None,
        description="Where notifications go (`python auth_tool.py telegram` finds it).",
    )
    allowed_users: tuple[int | str, ...] = env(
        "ALLOWED_USERS",
        expect="numeric user ids or @usernames separated by commas",
        default=(),
        description="Who may use commands: numeric ids (preferred) or @usernames.",
    )
    allow_groups: bool = env(
        "ALLOW_GROUPS",
        expect="true or false",
        default=False,
        description="Also answer allowed users' commands in group chats.",
    )
    telegram_api_url: str = env(
        "TELEGRAM_API_URL",
        expect="an http(s) URL such as https://api.telegram.org",
        default="https://api.telegram.org",
        description="Bot API server: a self-hosted one, or a test fake.",
    )
    webhook_url: str | None = env(
        "WEBHOOK_URL",
        expect="the public https URL of this app, like https://app.herokuapp.com",
        default=None,
        description="Receive updates by webhook at this URL instead of polling.",
    )
    webhook_secret: SecretStr | None = env(
        "WEBHOOK_SECRET",
        expect="1-256 characters of A-Z a-z 0-9 _ -",
        secret=True,
        default=None,
        description="Secret Telegram sends with each webhook request.",
    )
    port: int = env(
        "PORT",
        expect="a TCP port number",
        default=8080,
        ge=1,
        le=65535,
        description="Port the webhook listens on (Heroku sets it for web dynos).",
    )
    telegram_rate_per_chat: float = env(
        "TELEGRAM_RATE_PER_CHAT",
        expect="messages per second, e.g. 1",
        default=1.0,
        gt=0,
        description="Outbox limit per private chat, messages per second.",
    )
    telegram_rate_per_group: int = env(
        "TELEGRAM_RATE_PER_GROUP",
        expect="messages per minute, e.g. 20",
        default=20,
        gt=0,
        description="Outbox limit per group or channel, messages per minute.",
    )
    telegram_rate_global: int = env(
        "TELEGRAM_RATE_GLOBAL",
        expect="messages per second, e.g. 30",
        default=30,
        gt=0,
        description="Outbox limit over all chats, messages per second.",
    )

    @field_validator("telegram_token", "webhook_secret", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

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

    @field_validator("telegram_chat_id")
    @classmethod
    def _chat_form(cls, v: str | None) -> str | None:
        return chat(v)

    @field_validator("allowed_users", mode="before")
    @classmethod
    def _users(cls, v: Any) -> tuple[int | str, ...]:
        users: list[int | str] = []
        for part in split_list(v):
            if re.fullmatch(r"\d+", part):
                users.append(int(part))
            elif _USERNAME.match(part):
                users.append(part.lstrip("@").lower())
            else:
                raise ValueError(f"has {part!r}, which is neither a user id nor a @username")
        return tuple(users)

    @field_validator("telegram_api_url", "webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return http_url(v)

    def effective_webhook_secret(self) -> str | None:
        """WEBHOOK_SECRET, or one derived from the token so every dyno agrees without config."""
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        if self.telegram_token is None:
            return None
        token = self.telegram_token.get_secret_value()
        return hashlib.sha256(f"steward-webhook:{token}".encode()).hexdigest()[:48]
