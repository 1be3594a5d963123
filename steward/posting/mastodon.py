"""Mastodon: one publisher over plain httpx (Mastodon.py would add requests, dateutil and more
for the two calls used here).

Exactly once: each status is sent with an `Idempotency-Key` made from the post's key, so a retry
after a crash or a 503 returns the status the first attempt made (Mastodon keeps the key an
hour) instead of posting again. The length limit is the instance's
(`configuration.statuses.max_characters` of /api/v2/instance), 500 when it does not say.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import logging

import httpx

from steward.posting import textcount
from steward.posting.publishers import Published, PublishError

log = logging.getLogger("steward.posting")
TIMEOUT = 30.0


class MastodonPublisher:
    name = "mastodon"

    def __init__(self, api_url: str, token: str, *, timeout: float = TIMEOUT) -> None:
        self.api_url, self._token, self.timeout = api_url.rstrip("/"), token, timeout
        self._limit: int | None = None
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self._token}"}
            self._http = httpx.Client(base_url=self.api_url, headers=headers, timeout=self.timeout)
        return self._http

    def limit(self) -> int:
        """The instance's most characters per status (asked once)."""
        if self._limit is None:
            self._limit = textcount.MASTODON_LIMIT
            try:
                response = self._client().get("/api/v2/instance")
                if response.status_code == 200:
                    statuses = response.json().get("configuration", {}).get("statuses", {})
                    self._limit = int(statuses.get("max_characters") or self._limit)
            except (httpx.HTTPError, ValueError, TypeError) as exc:
                log.info("mastodon: instance limit unknown (%s); using %d", exc, self._limit)
        return self._limit

    def publish(self, text: str, key: str) -> Published:
        length, limit = textcount.mastodon_length(text), self.limit()
        if length > limit:
            raise PublishError(
                f"the text is {length} characters as Mastodon counts them (at most {limit})",
                permanent=True,
            )
        idem = hashlib.sha256(f"steward:{key}:{textcount_key(text)}".encode()).hexdigest()
        try:
            response = self._client().post(
                "/api/v1/statuses",
                json={"status": text, "visibility": "public"},
                headers={"Idempotency-Key": idem},
            )
        except httpx.HTTPError as exc:
            reason = f"Mastodon could not be reached ({type(exc).__name__})."
            raise PublishError(reason, permanent=False, retry_soon=True) from exc
        if response.status_code in (200, 201):
            body = response.json()
            return Published(str(body["id"]), body.get("url"))
        raise _error(response)


def textcount_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _error(response: httpx.Response) -> PublishError:
    status = response.status_code
    try:
        detail = str(response.json().get("error", ""))[:200]
    except ValueError:
        detail = response.text[:200]
    if status in (401, 403):
        reason = f"Mastodon refused the access token ({status}): {detail}"
        return PublishError(reason, permanent=True, auth=True)
    if status == 429:
        reset = _reset(response.headers.get("X-RateLimit-Reset"))
        return PublishError("Mastodon's rate limit is reached.", permanent=False, retry_at=reset)
    if status >= 500 or status == 408:
        reason = f"Mastodon answered {status}; it may work again later."
        return PublishError(reason, permanent=False, retry_soon=True)
    return PublishError(f"Mastodon refused the status ({status}): {detail}", permanent=True)


def _reset(value: str | None) -> dt.datetime:
    fallback = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    if not value:
        return fallback
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            return email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return fallback
