"""A loopback JSON HTTP server for the fakes of Mastodon and Bluesky: real sockets, threads."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class Reply(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class JsonFake:
    """Subclasses answer `route(method, path, query, headers, body) -> (status, body)`."""

    def __init__(self) -> None:
        self.url = ""
        self.calls: list[dict[str, Any]] = []
        self.delay = 0.0  # seconds each write waits before it is handled
        self.lock = threading.RLock()
        self._faults: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    def fail_next(self, path_prefix: str, status: int, count: int = 1) -> None:
        with self.lock:
            self._faults.append({"prefix": path_prefix, "status": status, "left": count})

    def __enter__(self):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, method: str, target: str, headers: dict[str, str], raw: bytes):
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query))
        content = headers.get("content-type", "")
        if raw and "json" in content:
            body = json.loads(raw)
        else:
            body = dict(parse_qsl(raw.decode())) if raw else {}
        with self.lock:
            self.calls.append({"method": method, "path": parts.path, "body": body})
            for fault in self._faults:
                if fault["left"] > 0 and parts.path.startswith(fault["prefix"]):
                    fault["left"] -= 1
                    return fault["status"], {"error": "fault injected"}, {}
        if method == "POST" and self.delay:
            time.sleep(self.delay)
        try:
            status, out = self.route(method, parts.path, query, headers, body)
            return status, out, {}
        except Reply as reply:
            return reply.status, reply.body, reply.headers

    def route(self, method, path, query, headers, body):  # pragma: no cover - overridden
        raise Reply(404, {"error": "Not found"})


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server.fake.handle(self.command, self.path, headers, raw)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve
