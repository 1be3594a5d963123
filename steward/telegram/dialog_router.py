"""Routes a chat's messages and button presses to its open dialog, before any other handler."""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, MessageEntity, Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from steward.features import Command
from steward.telegram.dialog_answers import Answer, parse_button
from steward.telegram.dialogs import ALLOWED_DURING, DialogEngine

log = logging.getLogger("steward.dialogs")


class DialogRouter:
    def __init__(self, dialogs: DialogEngine) -> None:
        self.dialogs = dialogs

    async def route(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is None or update.effective_user is None:
            return
        query = update.callback_query
        if query is not None:
            if query.data and query.data.startswith("dlg:"):
                await self._button(update, query)
                raise ApplicationHandlerStop
            return  # another feature's button: its own handler takes it
        message = update.message  # not an edit of an earlier message: that is no new answer
        if message is None:
            return
        row = await asyncio.to_thread(self.dialogs.open_dialog, chat.id)
        if row is None or row["user_id"] != update.effective_user.id:
            return  # no dialog here, or (in a group) someone else's: other handlers take it
        command = _command(message)
        if command is not None:
            if command in ALLOWED_DURING:
                return
            await message.reply_text(
                f"We are in the middle of /{row['name']}: answer the question above, "
                "or send /cancel first."
            )
            raise ApplicationHandlerStop
        if message.photo:
            photo = message.photo[-1].file_id
            answer = Answer(photo=photo, caption=message.caption, message_id=message.message_id)
        elif message.text is not None:
            answer = Answer(text=message.text, message_id=message.message_id)
        else:
            await message.reply_text("I can only take text or a photo here.")
            raise ApplicationHandlerStop
        if not await self.dialogs.answer(chat.id, answer):
            # It ended meanwhile (timed out, or finished on another worker).
            await message.reply_text("That conversation has ended; start it again if needed.")
        raise ApplicationHandlerStop

    async def _button(self, update: Update, query) -> None:
        parsed = parse_button(query.data)
        row = await asyncio.to_thread(self.dialogs.open_dialog, update.effective_chat.id)
        if row is not None and row["user_id"] != update.effective_user.id:
            await query.answer("This question is for someone else.")
            return
        if parsed is None or row is None or row["dialog_id"] != parsed[0]:
            await query.answer("This question is closed.")
            return
        _dialog_id, question, choice = parsed
        label = _label(query, choice)
        if label is None:
            await query.answer("This question is closed.")
            return
        accepted = await self.dialogs.answer(
            update.effective_chat.id, Answer(text=label), question=question
        )
        await query.answer(label if accepted else "This question is closed.")
        if accepted:
            await _close_buttons(query)

    def cancel_command(self) -> Command:
        async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            row = await asyncio.to_thread(self.dialogs.open_dialog, update.effective_chat.id)
            if row is not None and row["user_id"] != update.effective_user.id:
                # In a group, one person's /cancel must not end another's conversation.
                await update.effective_message.reply_text("That conversation is not yours.")
                return
            name = await self.dialogs.cancel(update.effective_chat.id)
            if name is None:
                await update.effective_message.reply_text("There is nothing to cancel.")

        return Command("cancel", "end the conversation in progress", cancel)


def _command(message: Message) -> str | None:
    """The command a message starts with, as CommandHandler sees one (a bot_command entity at
    offset 0), or None: a lone "/" or "/ 5" is text, so it is an answer."""
    first = message.entities[0] if message.entities else None
    if first is None or first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return None
    return message.parse_entity(first)[1:].split("@")[0].lower()


async def _close_buttons(query) -> None:
    """Take the buttons off an answered question: pressing one again would do nothing."""
    try:
        await query.edit_message_reply_markup(reply_markup=None)
    except TelegramError as exc:  # too old to edit, already closed: the answer stands
        log.debug("could not take the buttons off an answered question: %s", exc)


def _label(query, choice: int) -> str | None:
    """The pressed button's label, read from the message's own keyboard."""
    markup = query.message.reply_markup if query.message else None
    if markup is None:
        return None
    buttons = [b for row in markup.inline_keyboard for b in row]
    for button in buttons:
        if button.callback_data == query.data:
            return button.text
    return None
