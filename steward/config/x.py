"""X (Twitter): the app, the posting account, and the reader whose timeline gives words."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from steward.config.fields import SettingsPart, env, http_url


class XSettings(SettingsPart):
    x_consumer_key: SecretStr | None = env(
        "X_CONSUMER_KEY",
        "consumer_key",
        expect="the app's API key",
        secret=True,
        default=None,
        description="X app API key (consumer key).",
    )
    x_consumer_secret: SecretStr | None = env(
        "X_CONSUMER_SECRET",
        "consumer_secret",
        expect="the app's API secret",
        secret=True,
        default=None,
        description="X app API secret (consumer secret).",
    )
    x_access_token: SecretStr | None = env(
        "X_ACCESS_TOKEN",
        "user_access_token",
        expect="an access token from auth_tool.py x",
        secret=True,
        default=None,
        description="The posting account's access token.",
    )
    x_access_secret: SecretStr | None = env(
        "X_ACCESS_SECRET",
        "user_access_secret",
        expect="an access secret from auth_tool.py x",
        secret=True,
        default=None,
        description="The posting account's access secret.",
    )
    x_reader_access_token: SecretStr | None = env(
        "X_READER_ACCESS_TOKEN",
        expect="an access token from auth_tool.py x --reader",
        secret=True,
        default=None,
        description="Reader account whose timeline gives words.",
    )
    x_reader_access_secret: SecretStr | None = env(
        "X_READER_ACCESS_SECRET",
        expect="an access secret from auth_tool.py x --reader",
        secret=True,
        default=None,
        description="Reader account's access secret.",
    )
    x_api_url: str = env(
        "X_API_URL",
        expect="an http(s) URL such as https://api.twitter.com",
        default="https://api.twitter.com",
        description="X API server (a test fake in tests).",
    )

    @field_validator("x_api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return http_url(v)

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
