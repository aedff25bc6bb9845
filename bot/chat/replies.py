"""Sending, editing and answering on Telegram in the bot's one way (HTML, no link previews).

Every message the bot sends or edits goes through here: handlers and the messenger alike.
"""

from __future__ import annotations

import logging

from telegram import (
    Bot,
    CallbackQuery,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

log = logging.getLogger(__name__)

NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
Context = ContextTypes.DEFAULT_TYPE


async def reply(
    update: Update, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Answer the update's message with a reply to it."""
    message = update.effective_message
    if message is None:
        return None
    return await message.reply_text(
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        link_preview_options=NO_PREVIEW,
        reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
    )


async def send(
    bot: Bot,
    chat_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    reply_to: int | None = None,
    plain: bool = False,
) -> Message:
    """Send `text` (HTML, or `plain` text), as a reply to `reply_to` (which may be gone)."""
    return await bot.send_message(
        chat_id,
        text,
        parse_mode=None if plain else ParseMode.HTML,
        reply_markup=markup,
        link_preview_options=NO_PREVIEW,
        reply_parameters=None
        if reply_to is None
        else ReplyParameters(reply_to, allow_sending_without_reply=True),
    )


async def answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Answer a callback query; one that is too old is harmless."""
    try:
        await query.answer(text[:200] if text else None, show_alert=alert)
    except BadRequest as exc:
        log.info("callback answer failed: %s", exc.message)


async def edit_text(
    bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    """Edit a message's text and keyboard; Telegram's refusals are raised."""
    await bot.edit_message_text(
        text,
        chat_id=chat_id,
        message_id=message_id,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        link_preview_options=NO_PREVIEW,
    )


def not_modified(exc: BadRequest) -> bool:
    """Whether an edit was refused only because it would change nothing."""
    return "not modified" in exc.message.lower()


async def edit(
    bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
) -> bool:
    """Edit a message's text and keyboard; "not modified" counts as done."""
    try:
        await edit_text(bot, chat_id, message_id, text, markup)
    except BadRequest as exc:
        if not_modified(exc):
            return True
        log.info("message %s in %s not editable: %s", message_id, chat_id, exc.message)
        return False
    except TelegramError as exc:
        log.warning("message %s in %s: edit failed: %s", message_id, chat_id, exc)
        return False
    return True


async def edit_markup(
    bot: Bot, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
) -> None:
    """Change only a message's keyboard."""
    try:
        await bot.edit_message_reply_markup(
            chat_id=chat_id, message_id=message_id, reply_markup=markup
        )
    except TelegramError as exc:
        log.info("message %s in %s: keyboard edit failed: %s", message_id, chat_id, exc)
