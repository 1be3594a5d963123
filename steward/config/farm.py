"""The farm: the key that encrypts its bots' tokens in the store."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import SecretStr, field_validator

from steward.config.fields import SettingsPart, env


class FarmSettings(SettingsPart):
    steward_secret_key: SecretStr | None = env(
        "STEWARD_SECRET_KEY",
        expect="Fernet keys separated by commas, newest first (see README: The farm)",
        secret=True,
        default=None,
        description="Encrypts farm bots' tokens in the store; old keys after the new one.",
    )

    @field_validator("steward_secret_key", mode="before")
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
