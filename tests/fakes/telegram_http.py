"""The fake Telegram's HTTP layer: request decoding, error answers, the handler, webhook posts."""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import queue
import socket
import sys
import threading
from collections.abc import Callable
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

_JSON_PARAMS = {
    "reply_markup",
    "reply_parameters",
    "commands",
    "scope",
    "allowed_updates",
    "entities",
    "caption_entities",
    "link_preview_options",
}
_INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "reply_to_message_id"}


class ApiError(Exception):
    """An error answer: HTTP status, Telegram's description, optional `parameters`."""

    def __init__(self, status: int, description: str, parameters: dict | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def payload(self) -> dict:
        body = {"ok": False, "error_code": self.status, "description": self.description}
        return body | ({"parameters": self.parameters} if self.parameters else {})


def too_many(retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


class NoAnswer(Exception):
    """Hold the request (`timeout`) or drop the connection (`drop`) without answering."""


class Upload(NamedTuple):
    """A file part of a multipart request."""

    filename: str | None
    data: bytes


def decode_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    """Parameters from the query string and a JSON, form-urlencoded or multipart body."""
    raw: dict[str, Any] = dict(parse_qsl(query))
    if body and content_type.startswith("application/json"):
        return raw | json.loads(body)
    if body and content_type.startswith("multipart/form-data"):
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        for part in BytesParser(policy=HTTP).parsebytes(head + body).iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            raw[name] = Upload(filename, data) if filename else data.decode()
    elif body:
        raw |= dict(parse_qsl(body.decode(), keep_blank_values=True))
    # Form posts carry every value as a string; JSON-typed ones arrive JSON-encoded.
    for key, value in raw.items():
        if not isinstance(value, str):
            continue
        if key in _JSON_PARAMS:
            raw[key] = json.loads(value)
        elif key in _INT_PARAMS and value.lstrip("-").isdigit():
            raw[key] = int(value)
        elif value in ("true", "false") and key not in ("text", "caption", "data"):
            raw[key] = value == "true"
    return raw


class Handler(BaseHTTPRequestHandler):
    """Hands every request to `api.serve(path, query, content_type, body)`."""

    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse one connection
    disable_nagle_algorithm = True  # small answers must not wait for delayed ACKs
    api: Any  # the FakeTelegram, set on a subclass per server
    connections: set[socket.socket]  # open ones, so that stopping can close them

    def setup(self) -> None:
        super().setup()
        self.connections.add(self.connection)

    def finish(self) -> None:
        self.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.api.serve(
            unquote(url.path), url.query, self.headers.get("Content-Type", ""), body
        )
        if answer is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, ctype, payload = answer
        head = (
            f"HTTP/1.1 {status} {http.client.responses.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.wfile.write(head.encode() + payload)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the fake's `calls` is the log."""


class Server(ThreadingHTTPServer):
    """A threaded server that takes bursts of clients and does not print their hang-ups."""

    daemon_threads = True  # a held or kept-alive request must not block stopping
    request_queue_size = 1024  # the default backlog of 5 resets connections under load

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def post_updates(
    outgoing: queue.Queue, webhook: Callable[[], dict | None], stopping: threading.Event
) -> None:
    """Posts queued updates to the webhook, like Telegram, over a kept-alive connection."""
    conn: http.client.HTTPConnection | None = None
    try:
        while (update := outgoing.get()) is not None:
            hook = webhook()
            if hook is None:
                continue
            url = urlsplit(hook["url"])
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            for _ in range(20):  # Telegram retries too; the bot may still be starting
                try:
                    if conn is None or (conn.host, conn.port) != (url.hostname, url.port):
                        if conn is not None:
                            conn.close()
                        kind = http.client.HTTPSConnection if url.scheme == "https" else None
                        conn = (kind or http.client.HTTPConnection)(
                            url.hostname, url.port, timeout=10
                        )
                    conn.request("POST", url.path or "/", json.dumps(update), headers)
                    conn.getresponse().read()
                    break
                except (OSError, http.client.HTTPException):
                    if conn is not None:
                        conn.close()
                    conn = None
                    if stopping.wait(0.25):
                        return
    finally:
        if conn is not None:
            conn.close()
