"""Sending, editing and answering on Telegram in the bot's one way (HTML, no link previews)."""

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


async def send_reply(
    bot: Bot,
    chat_id: int,
    reply_to: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
) -> Message:
    """Send `text` to a chat as a reply to one of its messages (which may be gone)."""
    return await bot.send_message(
        chat_id,
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        link_preview_options=NO_PREVIEW,
        reply_parameters=ReplyParameters(reply_to, allow_sending_without_reply=True),
    )


async def answer(query: CallbackQuery, text: str | None = None, alert: bool = False) -> None:
    """Answer a callback query; one that is too old is harmless."""
    try:
        await query.answer(text[:200] if text else None, show_alert=alert)
    except BadRequest as exc:
        log.info("callback answer failed: %s", exc.message)


async def edit(
    bot: Bot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
) -> bool:
    """Edit a message's text and keyboard; "not modified" counts as done."""
    try:
        await bot.edit_message_text(
            text,
            chat_id=chat_id,
            message_id=message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=markup,
            link_preview_options=NO_PREVIEW,
        )
    except BadRequest as exc:
        if "not modified" in exc.message.lower():
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
