"""A fake Mastodon instance: statuses with Idempotency-Key, the instance's length limit, OAuth
apps and tokens (for auth_tool.py mastodon), and 401 for a token it did not issue."""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from steward.posting.textcount import mastodon_length
from tests.fakes.json_http import JsonFake, Reply


class FakeMastodon(JsonFake):
    def __init__(self, max_characters: int | None = 500, acct: str = "alice") -> None:
        super().__init__()
        self.max_characters, self.acct = max_characters, acct
        self.tokens: set[str] = set()
        self.statuses: list[dict[str, Any]] = []
        self.apps: dict[str, dict[str, str]] = {}  # client_id -> app
        self.codes: dict[str, str] = {}  # authorization code -> client_id
        self._idempotent: dict[tuple[str, str], dict[str, Any]] = {}
        self._ids = itertools.count(110_000_000_000_000_001)

    def add_token(self, token: str) -> None:
        self.tokens.add(token)

    def code_for(self, client_id: str) -> str:
        """What the instance shows the user after they approve the app in the browser."""
        code = secrets.token_urlsafe(8)
        self.codes[code] = client_id
        return code

    def _token(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip()
        if not auth.startswith("Bearer ") or token not in self.tokens:
            raise Reply(401, {"error": "The access token is invalid"})
        return token

    def route(self, method, path, query, headers, body):
        if (method, path) == ("GET", "/api/v2/instance"):
            statuses = (
                {} if self.max_characters is None else {"max_characters": self.max_characters}
            )
            return 200, {"uri": "fake.example", "configuration": {"statuses": statuses}}
        if (method, path) == ("POST", "/api/v1/apps"):
            client_id = secrets.token_urlsafe(8)
            app = {"client_id": client_id, "client_secret": secrets.token_urlsafe(12)}
            self.apps[client_id] = app | {"name": body.get("client_name", "")}
            return 200, app
        if (method, path) == ("POST", "/oauth/token"):
            app = self.apps.get(body.get("client_id", ""))
            good = app and app["client_secret"] == body.get("client_secret")
            if not good or self.codes.pop(body.get("code", ""), None) != body.get("client_id"):
                raise Reply(400, {"error": "invalid_grant"})
            token = secrets.token_urlsafe(16)
            self.tokens.add(token)
            return 200, {"access_token": token, "token_type": "Bearer", "scope": body.get("scope")}
        if (method, path) == ("GET", "/api/v1/accounts/verify_credentials"):
            self._token(headers)
            return 200, {"acct": self.acct, "username": self.acct}
        if (method, path) == ("POST", "/api/v1/statuses"):
            return self._post(headers, body)
        raise Reply(404, {"error": "Record not found"})

    def _post(self, headers, body):
        token = self._token(headers)
        key = headers.get("idempotency-key")
        with self.lock:
            if key and (token, key) in self._idempotent:
                return 200, self._idempotent[(token, key)]
            text = str(body.get("status", ""))
            limit = self.max_characters or 500
            if not text.strip() or mastodon_length(text) > limit:
                raise Reply(
                    422, {"error": f"Validation failed: Text character limit of {limit} exceeded"}
                )
            status_id = str(next(self._ids))
            status = {
                "id": status_id,
                "content": f"<p>{text}</p>",
                "text": text,
                "url": f"https://fake.example/@{self.acct}/{status_id}",
            }
            self.statuses.append(status)
            if key:
                self._idempotent[(token, key)] = status
            return 200, status
