"""A fake Bluesky PDS: sessions from an app password, createRecord with record keys that must be
new, 300 graphemes, and 401/400 answers shaped like the real service's XRPC errors."""

from __future__ import annotations

import secrets
from typing import Any

from steward.posting.textcount import graphemes
from tests.fakes.json_http import JsonFake, Reply


class FakeBluesky(JsonFake):
    def __init__(self) -> None:
        super().__init__()
        self.accounts: dict[str, dict[str, str]] = {}  # handle -> {did, password}
        self.sessions: dict[str, str] = {}  # accessJwt -> did
        self.records: dict[tuple[str, str], dict[str, Any]] = {}  # (did, rkey) -> record

    @property
    def posts(self) -> list[dict[str, Any]]:
        return list(self.records.values())

    def add_account(self, handle: str, app_password: str) -> str:
        did = f"did:plc:{secrets.token_hex(12)}"
        self.accounts[handle] = {"did": did, "password": app_password}
        return did

    def expire_sessions(self) -> None:
        self.sessions = {jwt: "expired" for jwt in self.sessions}

    def route(self, method, path, query, headers, body):
        if (method, path) == ("POST", "/xrpc/com.atproto.server.createSession"):
            account = self.accounts.get(str(body.get("identifier", "")).lstrip("@"))
            if account is None or account["password"] != body.get("password"):
                raise Reply(
                    401,
                    {
                        "error": "AuthenticationRequired",
                        "message": "Invalid identifier or password",
                    },
                )
            jwt = secrets.token_urlsafe(24)
            self.sessions[jwt] = account["did"]
            handle = next(h for h, a in self.accounts.items() if a is account)
            return 200, {
                "did": account["did"],
                "handle": handle,
                "accessJwt": jwt,
                "refreshJwt": jwt + "r",
            }
        if (method, path) == ("POST", "/xrpc/com.atproto.repo.createRecord"):
            return self._create(headers, body)
        raise Reply(404, {"error": "MethodNotImplemented", "message": "Method Not Implemented"})

    def _create(self, headers, body):
        auth = headers.get("authorization", "")
        did = self.sessions.get(auth.removeprefix("Bearer ").strip())
        if not auth.startswith("Bearer ") or did is None:
            raise Reply(
                401, {"error": "AuthenticationRequired", "message": "Authentication Required"}
            )
        if did == "expired":
            raise Reply(400, {"error": "ExpiredToken", "message": "Token has expired"})
        if body.get("repo") != did:
            raise Reply(401, {"error": "AuthenticationRequired", "message": "Invalid repo"})
        record, rkey = body.get("record") or {}, str(body.get("rkey") or secrets.token_hex(6))
        if len(rkey) != 13:
            raise Reply(400, {"error": "InvalidRequest", "message": "Invalid record key"})
        text = str(record.get("text", ""))
        if graphemes(text) > 300:
            message = (
                "Invalid app.bsky.feed.post record: "
                "Record/text must not be longer than 300 graphemes"
            )
            raise Reply(400, {"error": "InvalidRequest", "message": message})
        with self.lock:
            if (did, rkey) in self.records:
                raise Reply(400, {"error": "InvalidRequest", "message": "Record already exists"})
            self.records[(did, rkey)] = record
        uri = f"at://{did}/app.bsky.feed.post/{rkey}"
        return 200, {"uri": uri, "cid": "bafyfake" + rkey}
