"""Whatever no other handler takes: other kinds of messages, unknown buttons and commands."""

from __future__ import annotations

from telegram import Update

from bot.chat.replies import Context, answer, reply
from bot.chat.services import Services
from bot.chat.texts import t


class Fallback:
    """Answers for what the bot cannot use, in the user's language."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def not_image(self, update: Update, context: Context) -> None:
        """Files, stickers, videos, voice, locations, polls…: explain what the bot needs."""
        await reply(update, t(await self.s.language(update.effective_user), "not_image"))

    async def unknown_button(self, update: Update, context: Context) -> None:
        """Buttons that are none of ours (or from an old version): answered all the same."""
        query = update.callback_query
        if query is not None:
            await answer(query, t(await self.s.language(query.from_user), "answer.unknown"))

    async def unknown_command(self, update: Update, context: Context) -> None:
        """A command the bot does not have: point to /help."""
        await reply(update, t(await self.s.language(update.effective_user), "unknown_command"))
