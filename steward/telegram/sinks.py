"""Where outgoing messages go: Telegram through python-telegram-bot, or the log without a token.

One small interface (`Sink.deliver`) with one typed error (`DeliveryError`). Telegram's quirks
live here: which errors are permanent, flood waits, chat migration, HTML that fails to parse,
and "message is not modified" on an edit (which means the edit is already there).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import warnings
from dataclasses import dataclass
from typing import Literal, Protocol

from steward.telegram.formatting import TEXT_LIMIT, cut_caption, split_html, strip_html

log = logging.getLogger("steward.outbox")

Kind = Literal["text", "photo", "document", "edit_text", "edit_caption"]


@dataclass(frozen=True)
class Outgoing:
    """One Telegram API call's worth of message (text and captions are Telegram HTML)."""

    chat_id: str
    kind: Kind
    text: str | None = None  # text, or the caption of a photo or document
    photo: bytes | None = None
    document: tuple[str, bytes] | None = None
    buttons: list[list[tuple[str, str]]] | None = None
    reply_to_message_id: int | None = None
    message_id: int | None = None  # the message an edit changes
    outbox_id: int | None = None  # for log lines only


def messages_for(row, reply_to_message_id: int | None = None) -> list[Outgoing]:
    """The messages one outbox row becomes, in order (empty when nothing is visible).

    A text over 4096 characters is split; a caption over 1024 is cut and its rest follows the
    file as text, then the row's own text. A reply points from the first message, the keyboard
    sits under the last.
    """
    parts: list[Outgoing] = []
    texts = [row.text] if row.text else []
    if row.photo is not None or row.document is not None:
        caption, rest = cut_caption(row.caption) if row.caption else (None, None)
        document = (row.document_name, row.document) if row.document is not None else None
        kind = "photo" if row.photo is not None else "document"
        parts.append(
            Outgoing(
                row.chat_id,
                kind,
                text=caption,
                photo=row.photo,
                document=document,
                outbox_id=row.id,
            )
        )
        texts = ([rest] if rest else []) + texts
    for text in texts:
        parts += [
            Outgoing(row.chat_id, "text", text=p, outbox_id=row.id)
            for p in split_html(text, TEXT_LIMIT)
        ]
    if parts:
        parts[0] = dataclasses.replace(parts[0], reply_to_message_id=reply_to_message_id)
        parts[-1] = dataclasses.replace(parts[-1], buttons=_buttons(row.buttons))
    return parts


def edit_for(row, chat_id: str, message_id: int, has_file: bool) -> Outgoing:
    """The edit of a sent message: its text, or its caption when it carried a file."""
    if has_file:
        text, _ = cut_caption(row.caption or row.text or "")
        kind: Kind = "edit_caption"
    else:
        text, kind = split_html(row.text or "")[0], "edit_text"
    return Outgoing(
        chat_id,
        kind,
        text=text,
        buttons=_buttons(row.buttons),
        message_id=message_id,
        outbox_id=row.id,
    )


def _buttons(stored) -> list[list[tuple[str, str]]] | None:
    return [[(label, data) for label, data in r] for r in stored] if stored else None


class DeliveryError(Exception):
    """A message could not be delivered.

    permanent: trying again cannot help (blocked, chat gone, bad request); else retry later.
    retry_after: Telegram's flood wait in seconds (429). migrate_to: the chat's new id.
    """

    def __init__(
        self,
        permanent: bool,
        reason: str,
        retry_after: float | None = None,
        migrate_to: int | None = None,
    ) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.reason = reason
        self.retry_after = retry_after
        self.migrate_to = migrate_to


class Sink(Protocol):
    async def deliver(self, message: Outgoing) -> int | None:
        """Send one message; return Telegram's message_id (None if there is none)."""
        ...


def _chat(chat_id: str) -> int | str:
    try:
        return int(chat_id)
    except ValueError:
        return chat_id  # "@channelname"


class TelegramSink:
    """Delivers through a python-telegram-bot `Bot` and maps its errors to `DeliveryError`."""

    def __init__(self, bot) -> None:  # bot: telegram.Bot (the import stays lazy)
        self.bot = bot

    async def deliver(self, message: Outgoing) -> int | None:
        from telegram.error import BadRequest

        try:
            return await self._call(message, plain=False)
        except BadRequest as exc:
            text = exc.message.lower()
            if "not modified" in text:
                return message.message_id  # the message already shows this: the edit is done
            if "can't parse entities" in text or "can't find end" in text:
                log.error(
                    "outbox #%s to %s: Telegram could not parse the HTML (%s); sent as plain text",
                    message.outbox_id,
                    message.chat_id,
                    exc.message,
                )
                try:
                    return await self._call(message, plain=True)
                except Exception as again:
                    raise as_delivery_error(again) from again
            raise as_delivery_error(exc) from exc
        except Exception as exc:
            raise as_delivery_error(exc) from exc

    async def _call(self, m: Outgoing, *, plain: bool) -> int | None:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, ReplyParameters

        text = strip_html(m.text) if (plain and m.text is not None) else m.text
        opts: dict = {"parse_mode": None if plain else "HTML"}
        if getattr(self.bot, "rate_limiter", None) is not None:
            opts["rate_limit_args"] = "outbox"  # paced by the sender already (limiter.py)
        if m.buttons:
            opts["reply_markup"] = InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(label, callback_data=data) for label, data in row]
                    for row in m.buttons
                ]
            )
        if m.reply_to_message_id is not None and m.kind in ("text", "photo", "document"):
            opts["reply_parameters"] = ReplyParameters(
                message_id=m.reply_to_message_id, allow_sending_without_reply=True
            )
        chat = _chat(m.chat_id)
        if m.kind == "text":
            sent = await self.bot.send_message(chat, text, **opts)
        elif m.kind == "photo":
            sent = await self.bot.send_photo(chat, m.photo, caption=text, **opts)
        elif m.kind == "document":
            name, data = m.document or ("file", b"")
            sent = await self.bot.send_document(
                chat, InputFile(data, filename=name), caption=text, **opts
            )
        elif m.kind == "edit_text":
            sent = await self.bot.edit_message_text(
                text, chat_id=chat, message_id=m.message_id, **opts
            )
        else:
            sent = await self.bot.edit_message_caption(
                chat_id=chat, message_id=m.message_id, caption=text, **opts
            )
        # Edits of messages sent by the bot return the Message; True for inline messages.
        return getattr(sent, "message_id", m.message_id)


def _retry_after(exc) -> float:
    from telegram.warnings import PTBDeprecationWarning

    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta; accept either form.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return float(value.total_seconds() if hasattr(value, "total_seconds") else value)


def as_delivery_error(exc: Exception) -> Exception:
    """The DeliveryError for a python-telegram-bot error (other exceptions pass through)."""
    from telegram import error

    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, error.RetryAfter):
        after = _retry_after(exc)
        return DeliveryError(False, f"flood wait {after:g}s", retry_after=after)
    if isinstance(exc, error.ChatMigrated):
        return DeliveryError(
            False, f"chat moved to {exc.new_chat_id}", migrate_to=int(exc.new_chat_id)
        )
    if isinstance(exc, error.Forbidden):
        return DeliveryError(True, f"forbidden: {exc.message}")
    if isinstance(exc, error.InvalidToken):
        return DeliveryError(True, "the bot token was rejected")
    if isinstance(exc, error.BadRequest):
        # A 400 does not get better by asking again (chat not found, message to edit gone, ...).
        return DeliveryError(True, f"bad request: {exc.message}")
    if isinstance(exc, error.TimedOut):
        return DeliveryError(False, "timed out")
    if isinstance(exc, error.TelegramError):
        # NetworkError: connection errors and 5xx; other Telegram errors are worth a retry too.
        return DeliveryError(False, f"network: {exc.message}")
    return exc


class LogSink:
    """Without a token: one log line per message, the text shown as plain text."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log
        self._ids = itertools.count(1)

    async def deliver(self, message: Outgoing) -> int | None:
        text = strip_html(message.text or "")
        what = {
            "text": "message",
            "photo": f"photo ({len(message.photo or b'')} bytes)",
            "document": f"document {message.document[0] if message.document else ''}",
            "edit_text": f"edit of message {message.message_id}",
            "edit_caption": f"caption edit of message {message.message_id}",
        }[message.kind]
        self.log.info("notification to %s, %s: %s", message.chat_id, what, text)
        return message.message_id if message.kind.startswith("edit") else next(self._ids)
