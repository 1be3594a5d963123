"""The pieces every settings model is made of: the field helper, shared validators, the error.

Each feature's settings model (`steward/config/<feature>.py`) declares its variables with
`env(...)`, which keeps the variable name, its seed aliases and the expected form together, so
that an error line and the docs (README's table, `.env.example`, `app.json`) come from one place.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EXIT_CONFIG = 78  # EX_CONFIG from sysexits.h: "configuration error"

CHAT = re.compile(r"^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$")


class ConfigError(Exception):
    """A configuration value the worker cannot run with; `str()` is the one line to print."""

    def __init__(self, variable: str, problem: str, expected: str = "") -> None:
        self.variable = variable
        line = f"{variable} {problem}"
        if expected:
            line += f"; expected {expected}"
        super().__init__(line)


class SettingsPart(BaseSettings):
    """Base of every feature's settings model: frozen, and exact about variable names."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")


def env(name: str, *aliases: str, expect: str, secret: bool = False, **kw: Any) -> Any:
    """A field read from `name` (or a seed alias), with the expected form kept for error lines."""
    extra = {"env": name, "expect": expect, "secret": secret}
    return Field(validation_alias=AliasChoices(name, *aliases), json_schema_extra=extra, **kw)


def split_list(value: Any) -> list[str]:
    """`a, b c` or a list -> ["a", "b", "c"]: commas and white space both separate."""
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [part.strip() for part in re.split(r"[,\s]+", str(value)) if part.strip()]


def http_url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash, or ValueError."""
    if value is None:
        return None
    if not re.match(r"^https?://[^\s/]+", value.strip()):
        raise ValueError("is not an http(s) URL")
    return value.strip().rstrip("/")


def chat(value: str | None) -> str | None:
    """A numeric chat id or @channelname, or ValueError."""
    if value is not None and not CHAT.match(value.strip()):
        raise ValueError("is not a chat id")
    return value.strip() if value else None
