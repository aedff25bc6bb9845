"""Admins only: /balance at each backend, /stats of the tasks."""

from __future__ import annotations

import asyncio

from telegram import Update

from bot.chat.replies import Context, reply
from bot.chat.services import Services
from bot.chat.texts import t
from bot.chat.views.admin import balance_text, stats_text
from bot.providers.errors import ProviderError
from storage.models import TaskState


class Admin:
    """/balance and /stats, for the bot's admins."""

    def __init__(self, services: Services) -> None:
        self.s = services

    async def balance(self, update: Update, context: Context) -> None:
        """Admins: what is left at each backend."""
        lang = await self._admin_language(update)
        if lang is None:
            return
        names = list(self.s.providers)
        results = await asyncio.gather(
            *(provider.balance() for provider in self.s.providers.values()),
            return_exceptions=True,
        )
        lines: list[tuple[str, str | None, str | None]] = []
        for name, result in zip(names, results, strict=True):
            label = self.s.catalogue.title(name)
            if isinstance(result, str):
                lines.append((label, result, None))
            elif isinstance(result, ProviderError):
                lines.append((label, None, f"{result.reason}: {result.message}"))
            elif isinstance(result, NotImplementedError):
                lines.append((label, None, "no balance endpoint"))
            else:
                lines.append((label, None, type(result).__name__))
        await reply(update, balance_text(lang, lines))

    async def stats(self, update: Update, context: Context) -> None:
        """Admins: tasks by state, model and day, and the latest failures."""
        lang = await self._admin_language(update)
        if lang is None:
            return
        stats = await self.s.tasks.stats()
        # Being sent now, or left undelivered because Telegram refused even a link.
        sending = await self.s.tasks.in_states(TaskState.DELIVERING)
        timeout = self.s.settings.task_timeout
        await reply(update, stats_text(lang, stats, self.s.catalogue, timeout, sending[-10:]))

    async def _admin_language(self, update: Update) -> str | None:
        user = update.effective_user
        lang = await self.s.language(user)
        if user is None or user.id not in self.s.settings.admin_user_ids:
            await reply(update, t(lang, "admin.only"))
            return None
        return lang
