"""The webhook server (WEBHOOK_URL set): Telegram's POSTs into the application's update queue.

python-telegram-bot's own server answers a malformed or empty body with a 500 and a CRITICAL
traceback, and hands a re-delivered update over twice. This one, on the same tornado, answers:
- 403 without the secret header (or with a wrong one);
- 400 with one log line for a body that is not a JSON update;
- 200 for an update id it has seen (Telegram re-delivers what was not answered in time), which
  is dropped; the handlers also drop repeats (app.SeenUpdates), whatever brought them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections import OrderedDict

import tornado.web
from telegram import Update
from tornado.httpserver import HTTPServer

log = logging.getLogger("steward.telegram")
REMEMBERED = 1000  # update ids kept to recognise a re-delivery


class WebhookServer:
    """`await start(url)` registers the webhook and listens; `await stop()` closes it."""

    def __init__(self, app, port: int, path: str, secret: str | None) -> None:
        self.app, self.port, self.path, self.secret = app, port, path, secret
        self.seen: OrderedDict[int, None] = OrderedDict()
        self._server: HTTPServer | None = None

    async def start(self, url: str) -> None:
        # Registered first: a failed call can be retried before anything listens (Telegram
        # retries its deliveries until the server below is up).
        await self.app.bot.set_webhook(
            url=url, secret_token=self.secret, allowed_updates=Update.ALL_TYPES
        )
        routes = [(rf"/{self.path}/?", _UpdateHandler, {"server": self})]
        self._server = HTTPServer(tornado.web.Application(routes, log_function=lambda _h: None))
        self._server.listen(self.port, address="0.0.0.0")

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await asyncio.wait_for(self._server.close_all_connections(), timeout=2)
            self._server = None

    def first_time(self, update_id: int) -> bool:
        if update_id in self.seen:
            return False
        self.seen[update_id] = None
        if len(self.seen) > REMEMBERED:
            self.seen.popitem(last=False)
        return True


class _UpdateHandler(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("POST",)  # type: ignore[assignment]

    def initialize(self, server: WebhookServer) -> None:
        self.server = server

    async def post(self) -> None:
        secret = self.server.secret
        given = self.request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if secret and not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("webhook: refused a request without the right secret")
            self.set_status(403)
            return
        try:
            data = json.loads(self.request.body or b"")
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("not an update")
            update = Update.de_json(data, self.server.app.bot)
        except Exception as exc:
            size = len(self.request.body or b"")
            log.warning("webhook: a body that is no update (%d bytes): %s", size, _short(exc))
            self.set_status(400)
            return
        if not self.server.first_time(update.update_id):
            log.info("webhook: update %s delivered again; dropped", update.update_id)
            return
        await self.server.app.update_queue.put(update)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
