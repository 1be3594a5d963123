"""Bluesky: one publisher over plain httpx (the atproto SDK carries models for every lexicon;
two XRPC calls are all posting needs).

A session is made from BLUESKY_HANDLE and the app password (com.atproto.server.createSession)
and renewed when the PDS says the token expired. Exactly once: each post is written with a
record key derived from the post's key (a TID), so a retry after a crash writes the same record,
which the PDS refuses as existing: that answer is the "duplicate" the poster takes as proof after
an attempt of ours. Links become facets (Bluesky shows plain text otherwise); the limit is 300
graphemes.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import httpx

from steward.posting import textcount
from steward.posting.publishers import Published, PublishError

TIMEOUT = 30.0
_TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"
# Record keys count microseconds from here (a fixed start, so a key never depends on a clock).
_TID_EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


def tid_for(key: str, text: str) -> str:
    """A valid TID (13 base32-sortable characters) that is the same for the same post."""
    digits = "".join(c for c in key if c.isdigit()) or "0"
    micros = _TID_EPOCH_US + int(digits[-15:])
    clock_id = int(hashlib.sha256(text.encode()).hexdigest(), 16) & 0x3FF
    value = (micros << 10) | clock_id
    out = "".join(_TID_CHARS[(value >> (5 * i)) & 31] for i in range(12, -1, -1))
    return out


def link_facets(text: str) -> list[dict]:
    """`app.bsky.richtext.facet#link` for each URL, with UTF-8 byte offsets as Bluesky wants."""
    facets = []
    for start, end in textcount.url_spans(text):
        uri = text[start:end]
        if not uri.lower().startswith(("http://", "https://")):
            uri = f"https://{uri}"
        facets.append(
            {
                "index": {
                    "byteStart": len(text[:start].encode()),
                    "byteEnd": len(text[:end].encode()),
                },
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": uri}],
            }
        )
    return facets


class BlueskyPublisher:
    name = "bluesky"

    def __init__(
        self, api_url: str, handle: str, app_password: str, *, timeout: float = TIMEOUT
    ) -> None:
        self.api_url, self.handle, self._password = api_url.rstrip("/"), handle, app_password
        self.timeout = timeout
        self._http: httpx.Client | None = None
        self._session: dict | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(base_url=self.api_url, timeout=self.timeout)
        return self._http

    def login(self) -> dict:
        """A session: {"did", "handle", "accessJwt", ...}; raises PublishError when refused."""
        body = {"identifier": self.handle, "password": self._password}
        response = self._call("POST", "com.atproto.server.createSession", body, auth=False)
        if response.status_code != 200:
            raise _error(response)
        self._session = response.json()
        return self._session

    def publish(self, text: str, key: str) -> Published:
        length = textcount.graphemes(text)
        if length > textcount.BLUESKY_LIMIT:
            raise PublishError(
                f"the text is {length} graphemes (Bluesky takes at most {textcount.BLUESKY_LIMIT})",
                permanent=True,
            )
        session = self._session or self.login()
        record: dict = {
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        }
        if facets := link_facets(text):
            record["facets"] = facets
        body = {
            "repo": session["did"],
            "collection": "app.bsky.feed.post",
            "rkey": tid_for(key, text),
            "record": record,
        }
        response = self._call("POST", "com.atproto.repo.createRecord", body)
        if response.status_code == 400 and _code(response) == "ExpiredToken":
            self.login()
            body["repo"] = self._session["did"]  # type: ignore[index]
            response = self._call("POST", "com.atproto.repo.createRecord", body)
        if response.status_code == 200:
            uri = response.json()["uri"]  # at://did/app.bsky.feed.post/rkey
            rkey = uri.rsplit("/", 1)[-1]
            handle = (self._session or {}).get("handle", self.handle)
            return Published(uri, f"https://bsky.app/profile/{handle}/post/{rkey}")
        raise _error(response)

    def _call(self, method: str, nsid: str, body: dict, *, auth: bool = True) -> httpx.Response:
        headers = {}
        if auth and self._session:
            headers["Authorization"] = f"Bearer {self._session['accessJwt']}"
        try:
            return self._client().request(method, f"/xrpc/{nsid}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = f"Bluesky could not be reached ({type(exc).__name__})."
            raise PublishError(reason, permanent=False, retry_soon=True) from exc


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


def _error(response: httpx.Response) -> PublishError:
    status, code = response.status_code, _code(response)
    try:
        message = str(response.json().get("message", ""))[:200]
    except ValueError:
        message = response.text[:200]
    if status == 401 or code in ("AuthenticationRequired", "InvalidToken", "AccountTakedown"):
        reason = f"Bluesky refused BLUESKY_HANDLE and BLUESKY_APP_PASSWORD ({status}): {message}"
        return PublishError(reason, permanent=True, auth=True)
    if status == 429:
        reset = response.headers.get("ratelimit-reset")
        when = (
            dt.datetime.fromtimestamp(int(reset), dt.UTC)
            if reset and reset.isdigit()
            else dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        )
        return PublishError("Bluesky's rate limit is reached.", permanent=False, retry_at=when)
    if status >= 500:
        reason = f"Bluesky answered {status}; it may work again later."
        return PublishError(reason, permanent=False, retry_soon=True)
    if "already exists" in message.lower() or code == "RecordAlreadyExists":
        return PublishError("Bluesky already has this post.", permanent=True, duplicate=True)
    return PublishError(f"Bluesky refused the post ({status}): {message}", permanent=True)
