"""The services handlers and the web app work with, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import User

from bot.chat.draft_messages import DraftMessages
from bot.chat.messenger import Messenger
from bot.chat.texts import language_of
from bot.config import Settings
from bot.drafts.service import DraftService
from bot.engine.submit import Submitter
from bot.engine.timing import Timings
from bot.engine.tracker import Tracker
from bot.providers.base import Provider
from bot.providers.catalogue import Catalogue
from storage import ChatRepository, Database, TaskRepository, UserSettingsRepository


@dataclass
class Services:
    """Everything a request handler may need."""

    settings: Settings
    db: Database
    catalogue: Catalogue
    providers: dict[str, Provider]
    drafts: DraftService
    draft_messages: DraftMessages
    tasks: TaskRepository
    users: UserSettingsRepository
    chats: ChatRepository
    messenger: Messenger
    tracker: Tracker
    submitter: Submitter
    timings: Timings

    async def language(self, user: User | None) -> str:
        """The user's language: chosen in /settings, else from Telegram's `language_code`."""
        if user is None:
            return "en"
        chosen = (await self.users.get(user.id)).language
        return chosen or language_of(user.language_code)
