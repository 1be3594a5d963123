"""A fake EVM JSON-RPC node on loopback: answers eth_blockNumber with a height the test moves.

It checks requests the way a real node does (JSON-RPC 2.0 envelope, known method), so a client
that sent a malformed request would see an error, not a height. Modes: "ok", "error" (a
JSON-RPC error object), "http500", "garbage" (a 200 that is not JSON-RPC), "hang" (no answer
until stopped), "drip" (a good answer, one byte every `drip_every` seconds: each read is quick,
the whole answer slow), "drop_once" (hang up on the next request without a word, like a pooled
connection the node had closed, then answer again); `stop()` makes it refuse connections, like a
node that is down.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEvmNode:
    def __init__(self, height: int = 1000) -> None:
        self.height = height
        self.mode = "ok"
        self.drip_every = 0.1
        self.requests = 0
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/rpc"

    def stop(self) -> None:
        """Close the port: connections are refused from now on."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeEvmNode:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, request: dict) -> tuple[int, bytes] | None:
        self.requests += 1
        if self.mode == "drop_once":
            self.mode = "ok"
            return None
        if self.mode == "hang":
            self._released.wait(60)
            return None
        if self.mode == "http500":
            return 500, b"internal error"
        if self.mode == "garbage":
            return 200, b"<html>maintenance</html>"
        ident = request.get("id")
        if request.get("jsonrpc") != "2.0" or "id" not in request or "method" not in request:
            error = {"code": -32600, "message": "Invalid Request"}
        elif request["method"] != "eth_blockNumber":
            error = {"code": -32601, "message": "the method does not exist"}
        elif request.get("params", []) != []:
            error = {"code": -32602, "message": "invalid params"}
        elif self.mode == "error":
            error = {"code": -32000, "message": "header not found"}
        else:
            return 200, json.dumps(
                {"jsonrpc": "2.0", "id": ident, "result": hex(self.height)}
            ).encode()
        return 200, json.dumps({"jsonrpc": "2.0", "id": ident, "error": error}).encode()

    def _handler(self):
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                try:
                    request = json.loads(self.rfile.read(length))
                    if not isinstance(request, dict):
                        raise ValueError
                except ValueError:
                    status, body = 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700}}'
                else:
                    answer = node._answer(request)
                    if answer is None:
                        self.close_connection = True
                        return  # hung until stopped: hang up without a word
                    status, body = answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if node.mode != "drip":
                    self.wfile.write(body)
                    return
                try:
                    for byte in body:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        if node._released.wait(node.drip_every):
                            return
                except OSError:
                    self.close_connection = True  # the client gave up waiting

            def log_message(self, *args) -> None:
                pass

        return Handler
