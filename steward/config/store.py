"""Where state lives, how much the worker logs, and the time zone people read times in."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr, field_validator

from steward import db
from steward.config.fields import SettingsPart, env


class StoreSettings(SettingsPart):
    database_url: SecretStr = env(
        "DATABASE_URL",
        expect="a URL like postgres://user:pass@host/db or sqlite:///file.sqlite",
        secret=True,
        default=SecretStr(db.DEFAULT_DATABASE_URL),
        description="The store. Heroku Postgres sets it; default a SQLite file here.",
    )
    store_outage_grace: int = env(
        "STORE_OUTAGE_GRACE",
        expect="seconds, e.g. 60",
        default=60,
        ge=1,
        description="How long the store may fail before the owner is told in the chat.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = env(
        "LOG_LEVEL",
        expect="DEBUG, INFO, WARNING or ERROR",
        default="INFO",
        description="How much the worker logs.",
    )
    tz: ZoneInfo = env(
        "TZ",
        expect="an IANA time zone such as Europe/Berlin",
        default=ZoneInfo("UTC"),
        description="Time zone for times in messages and charts.",
    )

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

    @property
    def database(self) -> str:
        return self.database_url.get_secret_value()
