"""Every setting, read from the environment once at start: typed, validated and documented.

`Settings` is the only place that knows variable names. It is composed of one model per feature
(`telegram.py`, `store.py`, `x.py`, `networks.py`, `posting.py`, `training.py`, `monitoring.py`,
`dialogs.py`, `farm.py` beside this file); a new variable goes into its feature's model, then
`python scripts/sync_config_docs.py` rewrites the docs. `load_settings()` reads the process
environment over an optional `.env` file (python-dotenv semantics; a real environment variable
always wins) and raises `ConfigError` with one sentence naming the variable and the expected form.
The seed bot's lowercase names (`consumer_key`, `template`, `timeout`, ...) are accepted as aliases.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from steward import db
from steward.config.dialogs import DialogSettings
from steward.config.farm import FarmSettings
from steward.config.fields import EXIT_CONFIG, ConfigError
from steward.config.monitoring import MonitoringSettings
from steward.config.networks import NetworkSettings
from steward.config.posting import PostingSettings
from steward.config.store import StoreSettings
from steward.config.telegram import TelegramSettings
from steward.config.training import TrainingSettings
from steward.config.x import XSettings

__all__ = ["EXIT_CONFIG", "ConfigError", "Settings", "gather", "load_settings", "variables"]


class Settings(
    # pydantic lists fields base-most first, so this order (reversed) is the order of README's
    # table, `.env.example` and `app.json`: Telegram, store, X, posting, training, monitoring.
    FarmSettings,
    DialogSettings,
    MonitoringSettings,
    TrainingSettings,
    PostingSettings,
    NetworkSettings,
    XSettings,
    StoreSettings,
    TelegramSettings,
):
    """The worker's configuration. Attribute names are the lowercase variable names."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        # load_settings() gathers the environment and .env itself (see there), so the
        # model reads only what it is given: tests and the worker build it the same way.
        return (init_settings,)

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
        from steward.monitoring.redact import secrets_in

        found += secrets_in(self.checks)  # CHECKS' URLs may hold passwords and API keys
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
