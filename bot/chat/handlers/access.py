"""Before and after every update: who may use the bot, and what a failed update says."""

from __future__ import annotations

import contextlib
import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.chat.replies import Context, answer, reply
from bot.chat.services import Services
from bot.chat.texts import language_of, t

log = logging.getLogger(__name__)


class Access:
    """The guard in front of every handler, and the error handler behind them."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def guard(self, update: Update, context: Context) -> None:
        """Runs first for every update: ALLOWED_USER_IDS, and chats that write again."""
        user, chat = update.effective_user, update.effective_chat
        if user is None:
            raise ApplicationHandlerStop
        if not self.s.settings.user_allowed(user.id):
            lang = language_of(user.language_code)
            if update.callback_query is not None:
                await answer(update.callback_query, t(lang, "answer.private"), alert=True)
            elif (
                update.effective_message is not None and chat is not None and chat.type == "private"
            ):
                await reply(update, t(lang, "private"))
            raise ApplicationHandlerStop
        if chat is not None and await self.s.chats.unblock(chat.id):
            log.info("chat %s writes to the bot again", chat.id)
            if await self.s.tasks.deliver_in_chat(chat.id):
                self.s.tracker.poke()  # its videos that were turned away go now

    async def error(self, update: object, context: Context) -> None:
        """Log the failure and tell the user something went wrong."""
        log.error("update failed", exc_info=context.error)
        if not isinstance(update, Update):
            return
        lang = language_of(update.effective_user.language_code if update.effective_user else None)
        if update.callback_query is not None:
            await answer(update.callback_query, t(lang, "error.generic"))
        elif update.effective_message is not None:
            with contextlib.suppress(TelegramError):
                await reply(update, t(lang, "error.generic"))
