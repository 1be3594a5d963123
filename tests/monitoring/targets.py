"""A controllable HTTP target on loopback (each path answers as told: slow, wrong, down), and
a clock the tests move."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0  # seconds before answering; a long one is a hanging target
    content_type: str = "text/plain"


class TargetServer:
    """`server.routes["/health"] = Route(...)`; unknown paths answer 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        # (method, path, headers, body) of every request, oldest first.
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.request_queue_size = 256
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                target.requests.append((self.command, self.path, dict(self.headers), body))
                route = target.routes.get(self.path, Route(404, b"not found"))
                target.hits[self.path] = target.hits.get(self.path, 0) + 1
                if route.delay and target._released.wait(route.delay):
                    self.close_connection = True
                    return  # stopped while hanging: hang up without a word
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

            def log_message(self, *args) -> None:
                pass

        return Handler


T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
