"""The other networks posts go to: a Mastodon instance and a Bluesky account."""

from __future__ import annotations

from pydantic import SecretStr, field_validator

from steward.config.fields import SettingsPart, env, http_url


class NetworkSettings(SettingsPart):
    mastodon_api_url: str | None = env(
        "MASTODON_API_URL",
        expect="your instance's https URL, e.g. https://mastodon.social",
        default=None,
        description="Mastodon instance to post to (with MASTODON_ACCESS_TOKEN).",
    )
    mastodon_access_token: SecretStr | None = env(
        "MASTODON_ACCESS_TOKEN",
        expect="an access token from auth_tool.py mastodon",
        secret=True,
        default=None,
        description="Mastodon access token with the write:statuses scope.",
    )
    bluesky_handle: str | None = env(
        "BLUESKY_HANDLE",
        expect="a handle like name.bsky.social",
        default=None,
        description="Bluesky account to post as (with BLUESKY_APP_PASSWORD).",
    )
    bluesky_app_password: SecretStr | None = env(
        "BLUESKY_APP_PASSWORD",
        expect="an app password from Settings > App passwords (xxxx-xxxx-xxxx-xxxx)",
        secret=True,
        default=None,
        description="Bluesky app password (never the account password).",
    )
    bluesky_api_url: str = env(
        "BLUESKY_API_URL",
        expect="an http(s) URL such as https://bsky.social",
        default="https://bsky.social",
        description="Bluesky PDS (the public service by default).",
    )

    @field_validator("mastodon_api_url", "bluesky_api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return http_url(v)
