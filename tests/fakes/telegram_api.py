"""A fake Telegram Bot API: a real loopback HTTP server that python-telegram-bot talks to unchanged.

Point a bot at it with `TELEGRAM_API_URL=fake.url` (PTB: `base_url=f"{url}/bot"`,
`base_file_url=f"{url}/file/bot"`). It answers like Telegram where it matters: strict HTML parsing,
length limits, chat errors (blocked, missing, migrated), flood limits with `retry_after`,
long-polling `getUpdates` with offsets, 409 conflicts, webhooks with the secret header.

Injected faults (`fail_next`, `set_faults`) never deliver the message, so a client that retries
correctly gets exactly-once delivery here. Real Telegram may have accepted a message whose answer
was lost (a timeout or dropped connection), so a real client can still double-send in that case.

Run `python -m tests.fakes.telegram_api` to chat with a bot by hand (see `main`).
The methods live in telegram_messages.py and telegram_methods.py, the HTTP layer in
telegram_http.py, the flood limits in telegram_flood.py, the HTML parse mode in telegram_html.py.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import queue
import random
import re
import socket
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

from tests.fakes.telegram_flood import FloodLimits
from tests.fakes.telegram_html import utf16_len
from tests.fakes.telegram_http import (
    ApiError,
    Handler,
    NoAnswer,
    Server,
    bad,
    decode_params,
    post_updates,
    too_many,
)
from tests.fakes.telegram_methods import EDITS, METHODS, POLL_CONFLICT, SENDS, BotApiMethods

_PATH = re.compile(r"^/(file/)?bot([^/]*)/(.+)$")
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@\w+)?")
DEFAULT_ERRORS = {
    400: "Bad Request: injected error",
    403: "Forbidden: bot was blocked by the user",
    409: POLL_CONFLICT,
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class FakeTelegram(BotApiMethods):
    """The fake server and its state; every public attribute is safe to read from tests."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        *,
        reply_delay: float = 0.0,
        enforce_limits: bool = True,
        per_chat_interval: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
        fault_hold: float = 12.0,
        port: int = 0,
        bot_username: str = "steward_test_bot",
    ) -> None:
        self.token, self.reply_delay, self.enforce_limits = token, reply_delay, enforce_limits
        self.limits = FloodLimits(per_chat_interval, group_per_minute, global_per_second)
        self.fault_hold, self.port = fault_hold, port
        bot_id = int(token.split(":")[0]) if token.split(":")[0].isdigit() else 1
        self.me = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Steward",
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self.sent: list[dict] = []
        self.calls: list[dict] = []
        self.commands: list[dict] = []
        self.webhook: dict | None = None
        self.conflict = False
        self.polling = 0  # getUpdates calls waiting right now
        self.on_sent: Callable[[dict], None] | None = None  # called with each new `sent` entry
        self.url = ""
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # getUpdates waits on it
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._chats: dict[int, dict] = {}
        self._store: dict[tuple[int, int], dict] = {}
        self._next_id: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._updates: deque[dict] = deque()
        self._update_ids = itertools.count(1)
        self._poll_generation = 0
        self._files: dict[str, bytes] = {}
        self._fail_next: dict[str, deque[ApiError | str]] = defaultdict(deque)
        self._faults: tuple[float, tuple, set, random.Random] | None = None
        self._outgoing: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._server: Server | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        handler = type("Handler", (Handler,), {"api": self, "connections": self._connections})
        self._server = Server(("127.0.0.1", self.port), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        ]
        webhook = (self._outgoing, lambda: self.webhook, self._stopping)
        self._threads += [
            threading.Thread(target=post_updates, args=webhook, daemon=True) for _ in range(4)
        ]
        for thread in self._threads:
            thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        with self._arrived:
            self._arrived.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for conn in list(self._connections):  # keep-alive connections would outlive the server
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for _ in self._threads[1:]:
            self._outgoing.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeTelegram:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests set up -----------------------------------------------------------------

    def add_chat(
        self,
        chat_id: int,
        type: str = "private",
        title: str | None = None,
        username: str | None = None,
        blocked: bool = False,
        migrate_to: int | None = None,
        missing: bool = False,
    ) -> dict:
        chat = {
            "id": chat_id,
            "type": type,
            "blocked": blocked,
            "migrate_to": migrate_to,
            "missing": missing,
            "username": username,
            "title": title or (None if type == "private" else f"Chat {chat_id}"),
        }
        with self._lock:
            self._chats[chat_id] = chat
        return chat

    def fail_next(
        self,
        method: str,
        status: int | str = 429,
        retry_after: int | None = None,
        description: str | None = None,
        count: int = 1,
    ) -> None:
        """The next `count` calls of `method` fail with `status` ("timeout"/"drop" too)."""
        if status in ("timeout", "drop"):
            error: ApiError | str = str(status)
        elif status == 429:
            error = too_many(retry_after or 1)
        else:
            error = ApiError(int(status), description or DEFAULT_ERRORS.get(int(status), "Error"))
        with self._lock:
            self._fail_next[method.lower()].extend([error] * count)

    def set_conflict(self, on: bool) -> None:
        """Answer every getUpdates with 409, as while another instance polls the token; a
        long poll already waiting is ended at once."""
        with self._arrived:
            self.conflict = on
            self._arrived.notify_all()

    def set_faults(
        self,
        rate: float = 0.3,
        kinds: tuple = ("429", "5xx", "timeout", "drop"),
        methods: tuple | None = None,
        seed: int = 1,
    ) -> None:
        """Fail a random `rate` of calls; `methods` None means every send and edit."""
        names = {m.lower() for m in (methods or (*SENDS, *EDITS))}
        self._faults = (rate, tuple(kinds), names, random.Random(seed)) if rate else None

    def push_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        username: str | None = None,
        first_name: str = "Test",
        chat_type: str | None = None,
    ) -> dict:
        entities = [
            {
                "type": "bot_command",
                "offset": utf16_len(text[: m.start()]),
                "length": utf16_len(m[0]),
            }
            for m in _COMMAND.finditer(text)
        ]
        extra = {"text": text} | ({"entities": entities} if entities else {})
        return self._push_message(chat_id, user_id, username, first_name, chat_type, extra)

    def push_photo(
        self,
        chat_id: int,
        user_id: int,
        caption: str | None = None,
        photo: bytes = b"\x89PNG fake photo",
    ) -> dict:
        extra = {"photo": self._photo_sizes(photo)} | ({"caption": caption} if caption else {})
        return self._push_message(chat_id, user_id, None, "Test", None, extra)

    def push_callback(self, chat_id: int, user_id: int, data: str, message_id: int) -> dict:
        with self._lock:
            message = self._store.get((chat_id, message_id), {}).get("json")
            message = message or {
                "message_id": message_id,
                "date": 0,
                "chat": self._chat_json(self._chat(chat_id)),
            }
        query = {
            "id": str(time.time_ns()),
            "from": self._user(user_id, None),
            "chat_instance": str(chat_id),
            "data": data,
            "message": message,
        }
        return self._push({"callback_query": query})

    # -- what tests read -------------------------------------------------------------------

    def messages(self, chat_id: int | None = None) -> list[dict]:
        return [m for m in list(self.sent) if chat_id is None or m["chat_id"] == chat_id]

    def wait_for(self, predicate: Callable[[FakeTelegram], Any], timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def wait_for_sent(self, count: int, chat_id: int | None = None, timeout: float = 10) -> bool:
        return self.wait_for(lambda f: len(f.messages(chat_id)) >= count, timeout)

    # -- HTTP ------------------------------------------------------------------------------

    def serve(self, path: str, query: str, ctype: str, body: bytes) -> tuple | None:
        match = _PATH.match(path)
        if match and match[2] == self.token and match[1]:
            data = self._files.get(match[3].rsplit("/", 1)[-1])
            if data is not None:
                return 200, "application/octet-stream", data
        name = match[3] if match else path
        method = METHODS.get(name.lower(), name) if match else name
        started = time.time()
        try:
            if match is None or match[1]:
                raise ApiError(404, "Not Found")
            if match[2] != self.token:
                raise ApiError(401, "Unauthorized")
            params = decode_params(query, ctype, body)
        except (ApiError, ValueError) as error:
            error = error if isinstance(error, ApiError) else bad("can't parse request")
            self._record(method, {}, error.status, started)
            return error.status, "application/json", json.dumps(error.payload()).encode()
        try:
            if method.lower() not in METHODS:
                raise ApiError(404, "Not Found")
            self._inject_fault(method)
            result = getattr(self, f"_do_{method.lower()}")(params)
            status, answer = 200, {"ok": True, "result": result}
        except ApiError as error:
            status, answer = error.status, error.payload()
        except (ValueError, TypeError, KeyError, AttributeError) as error:  # malformed parameters
            status, answer = 400, bad(f"invalid parameters: {error!r}").payload()
        except NoAnswer as fault:
            self._record(method, params, 0, started)
            if str(fault) == "timeout":
                self._stopping.wait(self.fault_hold)
            return None
        self._record(method, params, status, started)
        return status, "application/json", json.dumps(answer).encode()

    def _admit(self, chat: dict) -> None:
        """Flood limits, then the configured answer delay; only sends and edits come here."""
        if self.enforce_limits:
            self.limits.admit(chat["id"], private=chat["type"] == "private")
        if self.reply_delay:
            self._stopping.wait(self.reply_delay)  # sleeps this connection's thread only

    def _record(self, method: str, params: dict, status: int, started: float) -> None:
        self.calls.append({"method": method, "params": params, "status": status, "time": started})

    def _inject_fault(self, method: str) -> None:
        with self._lock:
            pending = self._fail_next.get(method.lower())
            injected = pending.popleft() if pending else None
            if injected is None and self._faults and method.lower() in self._faults[2]:
                rate, kinds, _, rng = self._faults
                injected = rng.choice(kinds) if rng.random() < rate else None
        if injected in ("429", "5xx"):
            injected = too_many(1) if injected == "429" else ApiError(502, "Bad Gateway")
        if isinstance(injected, ApiError):
            raise injected
        if injected:
            raise NoAnswer(injected)

    # -- pushing updates ------------------------------------------------------------------

    @staticmethod
    def _user(user_id: int, username: str | None, first_name: str = "Test") -> dict:
        user = {"id": user_id, "is_bot": False, "first_name": first_name}
        return user | ({"username": username} if username else {})

    def _push_message(
        self,
        chat_id: int,
        user_id: int,
        username: str | None,
        first_name: str,
        chat_type: str | None,
        extra: dict,
    ) -> dict:
        with self._lock:
            chat = self._chat(chat_id)
            if chat_type:
                chat["type"] = chat_type
            message_id = next(self._next_id[chat_id])
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": self._chat_json(chat),
                "from": self._user(user_id, username, first_name),
            } | extra
            self._store[(chat_id, message_id)] = {"json": message, "from_bot": False}
        return self._push({"message": message})

    def _push(self, body: dict) -> dict:
        update = {"update_id": next(self._update_ids)} | body
        if self.webhook is not None:
            self._outgoing.put(update)
            return update
        with self._arrived:
            self._updates.append(update)
            self._arrived.notify_all()
        return update


def main(argv: list[str] | None = None) -> None:
    """Chat with a bot by hand: each stdin line arrives as a private message from --user."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.telegram_api", description=main.__doc__
    )
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--user", type=int, default=42, help="the id of the user you play")
    parser.add_argument("--username", default="alice")
    parser.add_argument("--token", default="123456:TEST-token")
    parser.add_argument("--no-limits", action="store_true", help="do not enforce flood limits")
    args = parser.parse_args(argv)
    fake = FakeTelegram(token=args.token, port=args.port, enforce_limits=not args.no_limits)
    fake.on_sent = lambda m: print(f"[{m['method']} -> {m['chat_id']}] {m['text']}", flush=True)
    with fake:
        print(f"TELEGRAM_API_URL={fake.url}\nTELEGRAM_TOKEN={fake.token}", flush=True)
        print(f"Type a line to send it as @{args.username} ({args.user}); Ctrl-D ends.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            for line in sys.stdin:
                if line.strip():
                    fake.push_message(args.user, args.user, line.rstrip("\n"), args.username)


if __name__ == "__main__":
    main()
