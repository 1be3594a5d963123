"""Messages in the fake Telegram: sending and editing with Telegram's checks, chats and files.

`MessageMethods` is mixed into `FakeTelegram` (tests/fakes/telegram_api.py), which owns the state;
each `_do_<method>` takes the decoded parameters and returns the `result` or raises `ApiError`.
"""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.telegram_html import EntityParseError, utf16_len, visible_text
from tests.fakes.telegram_http import ApiError, bad

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


def render(params: dict, key: str) -> tuple[str, str]:
    """(visible text, raw text) of `params[key]` under its parse_mode; only HTML is parsed."""
    raw = str(params.get(key) or "")
    if str(params.get("parse_mode") or "").lower() != "html":
        return raw.strip(), raw
    try:
        return visible_text(raw).strip(), raw  # Telegram trims the visible text
    except EntityParseError as error:
        raise bad(f"can't parse entities: {error}") from None


def checked_text(params: dict) -> tuple[str, str]:
    text, raw = render(params, "text")
    if not text:
        raise bad("message text is empty")
    if utf16_len(text) > 4096:
        raise bad("message is too long")
    return text, raw


def checked_caption(params: dict) -> tuple[str, str]:
    caption, raw = render(params, "caption")
    if utf16_len(caption) > 1024:
        raise bad("message caption is too long")
    return caption, raw


def _check_dimensions(data: bytes) -> None:
    """Telegram's photo limits: width + height at most 10,000 px, the ratio at most 20."""
    if not data.startswith(b"\x89PNG") or len(data) < 24:
        return  # not a PNG this fake can measure
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if width + height > 10_000 or max(width, height) > 20 * max(1, min(width, height)):
        raise bad("PHOTO_INVALID_DIMENSIONS")


def inline_markup(params: dict) -> dict | None:
    """A message keeps only inline keyboards; reply keyboards live on the client."""
    markup = params.get("reply_markup")
    return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None


class MessageMethods:
    """Sending and editing over the state `FakeTelegram` keeps (its lock, chats, store, ...)."""

    def _do_sendmessage(self, params: dict) -> dict:
        chat = self._writable_chat(params)
        text, raw = checked_text(params)
        return self._send("sendMessage", chat, params, {"text": text}, text=text, html=raw)

    def _do_sendphoto(self, params: dict) -> dict:
        chat = self._writable_chat(params)
        caption, raw = checked_caption(params)
        data = self._upload(params.get("photo"))
        _check_dimensions(data or b"")
        body = {"photo": self._photo_sizes(data or b"")} | ({"caption": caption} if caption else {})
        return self._send(
            "sendPhoto", chat, params, body, text=caption, html=raw, caption=caption, photo=data
        )

    def _do_senddocument(self, params: dict) -> dict:
        chat = self._writable_chat(params)
        caption, raw = checked_caption(params)
        upload = params.get("document")
        data = self._upload(upload)
        name = getattr(upload, "filename", None) or "document"
        file_id = self._keep_file("document", data or b"")
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": "application/octet-stream",
            "file_size": len(data or b""),
        }
        body = {"document": document} | ({"caption": caption} if caption else {})
        return self._send(
            "sendDocument",
            chat,
            params,
            body,
            text=caption,
            html=raw,
            caption=caption,
            document=data,
            filename=name,
        )

    def _do_editmessagetext(self, params: dict) -> dict | bool:
        return self._edit("editMessageText", params)

    def _do_editmessagecaption(self, params: dict) -> dict | bool:
        return self._edit("editMessageCaption", params)

    def _do_editmessagereplymarkup(self, params: dict) -> dict | bool:
        return self._edit("editMessageReplyMarkup", params)

    def _send(self, method: str, chat: dict, params: dict, body: dict, **content: Any) -> dict:
        reply = params.get("reply_parameters") or {}
        reply_id = reply.get("message_id", params.get("reply_to_message_id"))
        with self._lock:
            replied = self._store.get((chat["id"], int(reply_id))) if reply_id else None
        lenient = reply.get("allow_sending_without_reply") or params.get(
            "allow_sending_without_reply"
        )
        if reply_id and replied is None and not lenient:
            raise bad("message to be replied not found")
        self._admit(chat)
        markup = inline_markup(params)
        with self._lock:
            message_id = next(self._next_id[chat["id"]])
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": self._chat_json(chat),
                "from": self._bot_user(),
            } | body
            if markup:
                message["reply_markup"] = markup
            if replied:
                message["reply_to_message"] = {
                    k: v for k, v in replied["json"].items() if k != "reply_to_message"
                }
            content = {
                "text": None,
                "html": None,
                "caption": None,
                "photo": None,
                "document": None,
                "filename": None,
            } | content
            self._store[(chat["id"], message_id)] = {
                "json": message,
                "from_bot": True,
                "reply_markup": markup,
                **content,
            }
            self._add_sent(
                method, chat["id"], message_id, params, content, reply_to=replied and int(reply_id)
            )
        return message

    def _edit(self, method: str, params: dict) -> dict | bool:
        if params.get("inline_message_id"):
            return True  # inline messages live in other chats; nothing to record
        chat = self._writable_chat(params)
        key = (chat["id"], int(params.get("message_id") or 0))
        with self._lock:
            stored = self._store.get(key)
        if stored is None:
            raise bad("message to edit not found")
        if not stored["from_bot"]:
            raise bad("message can't be edited")
        new = {k: stored[k] for k in ("text", "html", "caption")}
        is_text = stored["photo"] is None and stored["document"] is None
        if method == "editMessageText":
            if not is_text:
                raise bad("there is no text in the message to edit")
            new["text"], new["html"] = checked_text(params)
        elif method == "editMessageCaption":
            if is_text:
                raise bad("there is no caption in the message to edit")
            new["caption"], new["html"] = checked_caption(params)
            new["text"] = new["caption"]
        markup = inline_markup(params)
        same = all(stored[k] == new[k] for k in new) and stored["reply_markup"] == markup
        if same:
            raise bad(NOT_MODIFIED)
        self._admit(chat)
        with self._lock:
            stored.update(new, reply_markup=markup)
            message = dict(stored["json"], edit_date=int(time.time()))
            message.pop("reply_markup", None)
            if markup:
                message["reply_markup"] = markup
            if method == "editMessageText":
                message["text"] = new["text"]
            elif new["caption"] is not None:
                message["caption"] = new["caption"]
            stored["json"] = message
            self._add_sent(method, chat["id"], key[1], params, stored, reply_to=None)
        return message

    def _add_sent(
        self,
        method: str,
        chat_id: int,
        message_id: int,
        params: dict,
        content: dict,
        reply_to: int | None,
    ) -> None:
        entry = {
            "method": method,
            "chat_id": chat_id,
            "message_id": message_id,
            "text": content["text"] or "",
            "html": content["html"],
            "caption": content["caption"],
            "photo": content["photo"],
            "document": content["document"],
            "filename": content["filename"],
            "parse_mode": params.get("parse_mode"),
            "reply_to_message_id": reply_to or None,
            "reply_markup": params.get("reply_markup"),
            "time": time.time(),
        }
        self.sent.append(entry)
        if self.on_sent:
            self.on_sent(entry)

    # -- chats and files -------------------------------------------------------------------

    def _chat(self, chat_id: int | str) -> dict:
        """The chat a call names, created on first use; call with the lock held."""
        if chat_id in (0, "", None):
            raise bad("chat_id is empty")
        if isinstance(chat_id, str) and not chat_id.lstrip("-").isdigit():
            for chat in self._chats.values():
                if chat["username"] and f"@{chat['username']}" == chat_id:
                    return chat
            raise bad("chat not found")
        chat_id = int(chat_id)
        if chat_id not in self._chats:
            kind = "private" if chat_id > 0 else "group"
            self._chats[chat_id] = {
                "id": chat_id,
                "type": kind,
                "blocked": False,
                "migrate_to": None,
                "missing": False,
                "username": None,
                "title": None if kind == "private" else f"Chat {chat_id}",
            }
        return self._chats[chat_id]

    def _writable_chat(self, params: dict) -> dict:
        with self._lock:
            chat = self._chat(params.get("chat_id", 0))
        if chat["missing"]:
            raise bad("chat not found")
        if chat["blocked"] and chat["type"] == "private":
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat["migrate_to"]:
            raise ApiError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": chat["migrate_to"]},
            )
        return chat

    @staticmethod
    def _chat_json(chat: dict) -> dict:
        named = {"username": chat["username"]} if chat["username"] else {}
        if chat["type"] == "private":
            return {"id": chat["id"], "type": "private", "first_name": "Test"} | named
        return {"id": chat["id"], "type": chat["type"], "title": chat["title"]} | named

    def _bot_user(self) -> dict:
        return {k: self.me[k] for k in ("id", "is_bot", "first_name", "username")}

    def _upload(self, value: Any) -> bytes | None:
        """Uploaded bytes, or the bytes of a file id sent before; an URL is not fetched."""
        if value is None:
            raise bad("there is no file in the request")
        if hasattr(value, "data"):
            return value.data
        value = str(value)
        if value.startswith(("http://", "https://")):
            return None
        if value not in self._files:
            raise bad("wrong file identifier/HTTP URL specified")
        return self._files[value]

    def _keep_file(self, kind: str, data: bytes) -> str:
        with self._lock:
            file_id = f"{kind}-{len(self._files) + 1}"
            self._files[file_id] = data
        return file_id

    def _photo_sizes(self, data: bytes) -> list[dict]:
        file_id = self._keep_file("photo", data)
        return [
            {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}-{side}",
                "width": side,
                "height": side,
                "file_size": len(data),
            }
            for side in (90, 800)
        ]
