"""A fake X API: a real loopback HTTP server that tweepy talks to unchanged (X_API_URL=fake.url).

It answers like X where the worker depends on it: every request's OAuth 1.0a signature is checked
by oauthlib's provider endpoints (401 when wrong, revoked or replayed), the PIN flow
(`/oauth/request_token`, `/oauth/authorize`, `/oauth/access_token`), `POST /2/tweets` with X's
403 for duplicate content and 400 over 280 weighted characters, `GET /2/users/me`, the home
timeline, and injected 429s (with `x-rate-limit-reset`) and other failures.

Two delays make `POST /2/tweets` slow, so that a test can kill its client mid-request on either
side of X taking the post: `take_delay` before (a client that hangs up meanwhile never got its
request through, and X has nothing), `answer_delay` after (X has a post its sender never heard of).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import itertools
import json
import re
import secrets
import select
import socket
import threading
import time
import unicodedata
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from oauthlib.oauth1 import (
    AccessTokenEndpoint,
    RequestTokenEndpoint,
    RequestValidator,
    ResourceEndpoint,
)
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1

FIRST_ID = 1_800_000_000_000_000_000  # post ids look like X's snowflakes
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
_TIMELINE = re.compile(r"^/2/users/([^/]+)/timelines/reverse_chronological$")
_URL = re.compile(r"https?://\S+", re.IGNORECASE)
# Marks that join the character before them into one emoji or letter: they weigh nothing here.
_JOINERS = re.compile(r"[\u200d\ufe0e\ufe0f\u20e3\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


def weighted_length(text: str) -> int:
    """X's weighted length, leniently: URLs weigh 23, joined emoji sequences are not counted
    code point by code point, so the fake never refuses a text X would take."""
    text = unicodedata.normalize("NFC", text)
    length = 23 * len(_URL.findall(text))
    for ch in _JOINERS.sub("", _URL.sub("", text)):
        cp = ord(ch)
        light = cp <= 4351 or 8192 <= cp <= 8205 or 8208 <= cp <= 8223 or 8242 <= cp <= 8247
        length += 1 if light else 2
    return length


def problem(status: int, detail: str | None = None) -> dict[str, Any]:
    """X API v2's error body (RFC 7807 style)."""
    title = HTTPStatus(status).phrase
    return {"title": title, "type": "about:blank", "status": status, "detail": detail or title}


class Answer(Exception):
    """Stop handling a request and answer with this status, body and headers."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _Validator(RequestValidator):
    """oauthlib's questions answered from the fake's state (the fake's lock is held)."""

    def __init__(self, fake: FakeX) -> None:
        super().__init__()
        self.fake = fake

    enforce_ssl = False  # the fake is plain http on loopback
    allowed_signature_methods = (SIGNATURE_HMAC_SHA1,)  # all that X accepts
    dummy_client = "dummy-client"
    dummy_request_token = "dummy-request-token"
    dummy_access_token = "dummy-access-token"

    # X's keys and tokens are longer than oauthlib's defaults and contain "-".
    def _ok(self, value: str) -> bool:
        return 1 <= len(value) <= 200 and value.isascii() and value.isprintable()

    check_client_key = check_request_token = check_access_token = _ok
    check_nonce = check_verifier = _ok

    def validate_client_key(self, client_key, request):
        return client_key == self.fake.consumer_key and not self.fake.app_revoked

    def get_client_secret(self, client_key, request):
        return self.fake.consumer_secret if client_key == self.fake.consumer_key else "dummy"

    def validate_timestamp_and_nonce(
        self, client_key, timestamp, nonce, request, request_token=None, access_token=None
    ):
        seen = (client_key, timestamp, nonce, request_token or access_token)
        if seen in self.fake._nonces:
            return False
        self.fake._nonces.add(seen)
        return True

    # X has no realms.
    def get_default_realms(self, *args) -> list[str]:
        return []

    def _yes(self, *args, **kwargs) -> bool:
        return True

    get_realms, validate_requested_realms, validate_realms = get_default_realms, _yes, _yes

    def validate_redirect_uri(self, client_key, redirect_uri, request):
        return redirect_uri == "oob"  # PIN flow only, like an app without a callback URL

    def save_request_token(self, token, request):
        self.fake._request_tokens[token["oauth_token"]] = {
            "secret": token["oauth_token_secret"],
            "user_id": None,
            "pin": None,
        }

    def validate_request_token(self, client_key, token, request):
        return token in self.fake._request_tokens

    def get_request_token_secret(self, client_key, token, request):
        entry = self.fake._request_tokens.get(token)
        return entry["secret"] if entry else "dummy"

    def validate_verifier(self, client_key, token, verifier, request):
        entry = self.fake._request_tokens.get(token)
        return bool(entry and entry["pin"] and secrets.compare_digest(entry["pin"], verifier))

    def invalidate_request_token(self, client_key, request_token, request):
        self.fake._request_tokens.pop(request_token, None)

    def save_access_token(self, token, request):
        # oauthlib encodes this same dict as the answer, so X's extra fields go in here.
        user = self.fake._users[self.fake._request_tokens[request.resource_owner_key]["user_id"]]
        token.pop("oauth_authorized_realms", None)
        token["oauth_token"] = f"{user['id']}-{token['oauth_token']}"  # X's form: "<user id>-..."
        token["user_id"], token["screen_name"] = user["id"], user["username"]
        self.fake._tokens[token["oauth_token"]] = (token["oauth_token_secret"], user["id"])

    def validate_access_token(self, client_key, token, request):
        return token in self.fake._tokens

    def get_access_token_secret(self, client_key, token, request):
        return self.fake._tokens.get(token, ("dummy", None))[0]


class FakeX:
    """The fake server and its state. Use as a context manager, or `start()` and `stop()`."""

    def __init__(self, consumer_key: str = "ck", consumer_secret: str = "cs") -> None:
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.app_revoked = False
        self.posts: list[dict[str, Any]] = []
        self.calls: list[dict[str, Any]] = []
        self.browser_user: str | None = None  # who "is signed in" when the authorize page opens
        self.take_delay = 0.0  # seconds a new post is on its way before X takes it
        self.answer_delay = 0.0  # seconds a taken post waits before its 201 (the lock is free)
        self.url = ""
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, str]] = {}
        self._tokens: dict[str, tuple[str, str]] = {}  # access token -> (secret, user id)
        self._request_tokens: dict[str, dict[str, Any]] = {}
        self._nonces: set[tuple] = set()
        self._timeline: list[dict[str, Any]] = []  # oldest first
        self._ids = itertools.count(FIRST_ID)
        self._faults: list[dict[str, Any]] = []
        validator = _Validator(self)
        token = lambda *_: secrets.token_urlsafe(30)  # noqa: E731
        self._request_endpoint = RequestTokenEndpoint(validator, token_generator=token)
        self._access_endpoint = AccessTokenEndpoint(validator, token_generator=token)
        self._resource_endpoint = ResourceEndpoint(validator)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeX:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -------------------------------------------------------------------------

    def add_user(
        self, user_id: str, username: str, access_token: str, access_secret: str, name: str = ""
    ) -> None:
        with self._lock:
            user_id = str(user_id)
            self._users[user_id] = {"id": user_id, "name": name or username, "username": username}
            self._tokens[access_token] = (access_secret, user_id)
            if self.browser_user is None:
                self.browser_user = user_id

    def revoke(self, key: str) -> None:
        """Revoke an access token, or the whole app when `key` is the consumer key."""
        with self._lock:
            if key == self.consumer_key:
                self.app_revoked = True
            self._tokens.pop(key, None)

    def add_timeline_post(self, user_id: str, text: str) -> str:
        with self._lock:
            post = {"id": str(next(self._ids)), "text": text, "user_id": str(user_id)}
            self._timeline.append(post | {"time": _now()})
            return post["id"]

    def rate_limit(self, path_prefix: str, reset_in_seconds: float, count: int = 1) -> None:
        reset = str(int(time.time() + reset_in_seconds))
        headers = {"x-rate-limit-limit": "300", "x-rate-limit-remaining": "0"}
        self.fail_next(path_prefix, 429, count, headers | {"x-rate-limit-reset": reset})

    def fail_next(
        self, path_prefix: str, status: int, count: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        """The next `count` requests whose path starts with `path_prefix` answer `status`."""
        fault = {"prefix": path_prefix, "status": status, "left": count, "h": headers or {}}
        with self._lock:
            self._faults.append(fault)

    def authorize(self, request_token: str, user_id: str | None = None) -> str:
        """What a person does on the authorize page: returns the PIN X then shows."""
        with self._lock:
            entry = self._request_tokens[request_token]
            user_id = str(user_id or self.browser_user)
            if user_id not in self._users:
                raise KeyError(f"no user {user_id} in the fake")
            if entry["pin"] is None:
                entry["user_id"], entry["pin"] = user_id, f"{secrets.randbelow(10**7):07d}"
            return entry["pin"]

    def pin_for(self, request_token: str) -> str:
        """The PIN shown for this request token (authorized as `browser_user` if not yet)."""
        return self.authorize(request_token)

    # -- serving ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes):
        """(status, headers, body bytes) for one request."""
        parts = urlsplit(target)
        uri = f"http://{headers.get('Host', '127.0.0.1')}{target}"
        with self._lock:
            try:
                self._fault(parts.path)
                status, extra, payload = self._route(method, parts, uri, headers, body)
            except Answer as answer:
                status, extra, payload = answer.status, answer.headers, answer.body
            self.calls.append(
                {"method": method, "path": parts.path, "query": parts.query}
                | {"status": status, "time": _now()}
            )
        if status == 201 and (method, parts.path) == ("POST", "/2/tweets") and self.answer_delay:
            time.sleep(self.answer_delay)
        if isinstance(payload, str):
            return status, {"content-type": "text/html; charset=utf-8"} | extra, payload.encode()
        if isinstance(payload, bytes):
            return status, {"content-type": "application/x-www-form-urlencoded"} | extra, payload
        data = json.dumps(payload).encode() if payload is not None else b""
        return status, {"content-type": "application/json; charset=utf-8"} | extra, data

    def _fault(self, path: str) -> None:
        for fault in self._faults:
            if fault["left"] > 0 and path.startswith(fault["prefix"]):
                fault["left"] -= 1
                raise Answer(fault["status"], problem(fault["status"]), fault["h"])

    def _route(self, method, parts, uri, headers, body):
        path, query = parts.path, dict(parse_qsl(parts.query))
        form = body.decode() if "x-www-form-urlencoded" in headers.get("Content-Type", "") else ""
        if (method, path) == ("POST", "/oauth/request_token"):
            endpoint = self._request_endpoint.create_request_token_response
            return self._oauth(endpoint, uri, form, headers)
        if (method, path) == ("POST", "/oauth/access_token"):
            endpoint = self._access_endpoint.create_access_token_response
            return self._oauth(endpoint, uri, form, headers)
        if (method, path) == ("GET", "/oauth/authorize"):
            return self._authorize_page(query.get("oauth_token", ""))
        user = self._user(method, uri, form, headers)
        if (method, path) == ("POST", "/2/tweets"):
            return self._create_post(user, body)
        if (method, path) == ("GET", "/2/users/me"):
            return 200, {}, {"data": self._users[user]}
        if method == "GET" and (m := _TIMELINE.match(path)):
            return self._home_timeline(user, m.group(1), query)
        raise Answer(404, problem(404, f"no route for {method} {path}"))

    def _oauth(self, endpoint, uri, form, headers):
        _, answer, status = endpoint(uri, "POST", form, dict(headers))
        if status == 401:  # X's v1.1 answer for a bad signature, key, token or verifier
            raise Answer(401, {"errors": [{"code": 32, "message": "Could not authenticate you."}]})
        return status, {}, (answer or "").encode()

    def _user(self, method, uri, form, headers) -> str:
        valid, request = self._resource_endpoint.validate_protected_resource_request(
            uri, method, form, dict(headers)
        )
        if not valid:
            raise Answer(401, problem(401))
        return self._tokens[request.resource_owner_key][1]

    def _authorize_page(self, token: str):
        if token not in self._request_tokens or self.browser_user is None:
            page = "<p>This page is no longer valid. It looks like someone already used it.</p>"
            return 404, {}, _html("Error", page)
        pin = self.authorize(token)
        who = html.escape(self._users[self.browser_user]["username"])
        page = f"<p>You have authorized the app as @{who}. Enter this PIN:</p><code>{pin}</code>"
        return 200, {}, _html("Authorize app", page)

    def _create_post(self, user: str, body: bytes):
        try:
            text = json.loads(body or b"{}").get("text")
        except (ValueError, AttributeError):
            raise Answer(400, problem(400, "The request body is not valid JSON.")) from None
        if not isinstance(text, str) or not text.strip():
            raise Answer(400, problem(400, "The `text` field is required."))
        if weighted_length(text) > 280:
            raise Answer(400, problem(400, "The Tweet text is too long (over 280 characters)."))
        if any(p["user_id"] == user and p["text"] == text for p in self._timeline):
            raise Answer(403, problem(403, DUPLICATE))
        post = {"id": str(next(self._ids)), "text": text, "user_id": user, "time": _now()}
        self._timeline.append(post)
        self.posts.append(post)
        return 201, {}, {"data": _tweet(post)}

    def _home_timeline(self, user: str, user_id: str, query: dict[str, str]):
        if user_id != user:
            raise Answer(403, problem(403, "You can only read your own home timeline."))
        try:
            limit = int(query.get("max_results", "100"))
            since = int(query.get("since_id", "0"))
            until = int(query.get("pagination_token", str(10**30)))
        except ValueError:
            raise Answer(400, problem(400, "One or more parameters are invalid.")) from None
        # 1-100 on the home timeline (the user-tweets timeline is the one that wants 5 or more).
        if not 1 <= limit <= 100:
            raise Answer(400, problem(400, "max_results must be between 1 and 100."))
        newer = [p for p in reversed(self._timeline) if since < int(p["id"]) < until]
        fields = query.get("tweet.fields", "").split(",")
        page = [_tweet(p, "author_id" in fields) for p in newer]
        page, more = page[:limit], len(page) > limit
        meta: dict[str, Any] = {"result_count": len(page)}
        if not page:
            return 200, {}, {"meta": meta}
        meta |= {"newest_id": page[0]["id"], "oldest_id": page[-1]["id"]}
        if more:
            meta["next_token"] = page[-1]["id"]
        return 200, {}, {"data": page, "meta": meta}


def _tweet(post: dict[str, Any], author: bool = False) -> dict[str, Any]:
    """A post as X API v2 shows it: its default fields, and the author when asked for."""
    shown = {"id": post["id"], "text": post["text"], "edit_history_tweet_ids": [post["id"]]}
    return shown | ({"author_id": post["user_id"]} if author else {})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _html(title: str, body: str) -> str:
    return f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}"


def _hung_up(sock: socket.socket) -> bool:
    """Whether the client closed its end (it sent its whole request, so it has nothing more)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: FakeX = self.server.fake  # type: ignore[attr-defined]
        if fake.take_delay and (self.command, urlsplit(self.path).path) == ("POST", "/2/tweets"):
            time.sleep(fake.take_delay)
            if _hung_up(self.connection):
                return  # the client died before its request was through: X never saw it
        headers = {name.title(): value for name, value in self.headers.items()}
        status, answer_headers, data = fake.handle(self.command, self.path, headers, body)
        self.send_response(status)
        for name, value in answer_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def handle(self) -> None:
        # A client that went away before the answer (a test killed it) has nobody to tell.
        with contextlib.suppress(ConnectionError):
            super().handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read fake.calls instead of stderr
