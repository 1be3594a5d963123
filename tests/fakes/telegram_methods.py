"""The Bot API methods the fake Telegram answers besides messages: updates, webhooks, the rest.

`BotApiMethods` is mixed into `FakeTelegram` (tests/fakes/telegram_api.py), which owns the state;
each `_do_<method>` takes the decoded parameters and returns the `result` or raises `ApiError`.
"""

from __future__ import annotations

import itertools
import re
import time

from tests.fakes.telegram_http import ApiError, bad
from tests.fakes.telegram_messages import MessageMethods

SENDS = ("sendMessage", "sendPhoto", "sendDocument")
EDITS = ("editMessageText", "editMessageCaption", "editMessageReplyMarkup")
OTHERS = (
    "getMe",
    "getUpdates",
    "answerCallbackQuery",
    "setMyCommands",
    "getMyCommands",
    "deleteMyCommands",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "getChat",
    "getFile",
    "close",
    "logOut",
)
METHODS = {m.lower(): m for m in (*SENDS, *EDITS, *OTHERS)}  # Telegram ignores the case
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
_GIFTS = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
_NO_GIFTS = dict.fromkeys((*_GIFTS, "gifts_from_channels"), False)


class BotApiMethods(MessageMethods):
    """Updates, webhooks, commands and chat look-ups over the state `FakeTelegram` keeps."""

    def _do_getupdates(self, params: dict) -> list[dict]:
        if self.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset, limit = int(params.get("offset") or 0), int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._arrived:
            # A newer getUpdates ends a waiting one with 409, as when two instances poll.
            self._poll_generation += 1
            mine = self._poll_generation
            self._arrived.notify_all()
            while self._updates and offset > 0 and self._updates[0]["update_id"] < offset:
                self._updates.popleft()
            while offset < 0 and len(self._updates) > -offset:
                self._updates.popleft()
            self.polling += 1  # tests wait on it to know the bot is listening
            try:
                while not self._updates and not self._stopping.is_set() and not self.conflict:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
                    if self._poll_generation != mine:
                        raise ApiError(409, POLL_CONFLICT)
            finally:
                self.polling -= 1
            if self.conflict:
                raise ApiError(409, POLL_CONFLICT)
            return list(itertools.islice(self._updates, max(1, min(limit, 100))))

    def _do_setwebhook(self, params: dict) -> bool:
        url, secret = str(params.get("url") or ""), params.get("secret_token")
        if secret is not None and not _SECRET.fullmatch(str(secret)):
            raise bad("secret token contains unallowed characters")
        if url and not url.startswith(("http://", "https://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        with self._arrived:
            self.webhook = {"url": url, "secret_token": secret} if url else None
            if params.get("drop_pending_updates"):
                self._updates.clear()
            while self.webhook and self._updates:  # what waited is now delivered by webhook
                self._outgoing.put(self._updates.popleft())
        return True

    def _do_deletewebhook(self, params: dict) -> bool:
        with self._arrived:
            self.webhook = None
            if params.get("drop_pending_updates"):
                self._updates.clear()
        return True

    def _do_getwebhookinfo(self, params: dict) -> dict:
        url = self.webhook["url"] if self.webhook else ""
        return {
            "url": url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates) + self._outgoing.qsize(),
        }

    # -- the rest --------------------------------------------------------------------------

    def _do_getme(self, params: dict) -> dict:
        return self.me

    def _do_getchat(self, params: dict) -> dict:
        with self._lock:
            chat = self._chat(params.get("chat_id", 0))
        if chat["missing"]:
            raise bad("chat not found")
        return self._chat_json(chat) | {
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": _NO_GIFTS,
        }

    def _do_getfile(self, params: dict) -> dict:
        file_id = str(params.get("file_id"))
        if file_id not in self._files:
            raise bad("wrong file_id or the file is temporarily unavailable")
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self._files[file_id]),
            "file_path": f"files/{file_id}",
        }

    def _do_setmycommands(self, params: dict) -> bool:
        commands = list(params.get("commands") or [])
        for command in commands:
            if not _COMMAND_NAME.fullmatch(str(command.get("command", ""))):
                raise bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad("command description must be non-empty")
        self.commands = commands
        return True

    def _do_getmycommands(self, params: dict) -> list[dict]:
        return self.commands

    def _do_deletemycommands(self, params: dict) -> bool:
        self.commands = []
        return True

    def _do_answercallbackquery(self, params: dict) -> bool:
        return True

    def _do_close(self, params: dict) -> bool:
        return True

    _do_logout = _do_close
