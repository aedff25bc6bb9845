"""The services handlers and the web app work with, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from bot.engine.messenger import Messenger
from bot.engine.submit import Submitter
from bot.engine.tracker import Tracker
from bot.providers.base import Provider
from bot.providers.catalogue import Catalogue
from storage import (
    ChatRepository,
    Database,
    DraftRepository,
    TaskRepository,
    UserSettingsRepository,
)


@dataclass
class Services:
    """Everything a request handler may need."""

    settings: Settings
    db: Database
    catalogue: Catalogue
    providers: dict[str, Provider]
    drafts: DraftRepository
    tasks: TaskRepository
    users: UserSettingsRepository
    chats: ChatRepository
    messenger: Messenger
    tracker: Tracker
    submitter: Submitter
