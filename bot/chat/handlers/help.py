"""/start and /help."""

from __future__ import annotations

from telegram import Update

from bot.chat.replies import Context, reply
from bot.chat.services import Services
from bot.chat.texts import t


class Help:
    """The welcome, and how to make a video."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def start(self, update: Update, context: Context) -> None:
        """Welcome with an example."""
        await reply(update, t(await self.s.language(update.effective_user), "start"))

    async def help(self, update: Update, context: Context) -> None:
        """Explain the options."""
        await reply(update, t(await self.s.language(update.effective_user), "help"))
