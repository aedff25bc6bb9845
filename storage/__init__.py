"""Storage on SQLite or PostgreSQL: the database, its migrations and the repositories."""

from storage.chats import ChatRepository
from storage.database import Database, MissingDriverError, open_database
from storage.dialect import Dialect
from storage.drafts import DraftRepository
from storage.models import (
    AlbumImage,
    Draft,
    DraftState,
    GenerationOptions,
    ImageUse,
    Task,
    TaskState,
    UserSettings,
)
from storage.tasks import Limits, Refusal, Stats, TaskRepository
from storage.timings import TimingRepository
from storage.users import UserSettingsRepository

__all__ = [
    "AlbumImage",
    "ChatRepository",
    "Database",
    "Dialect",
    "Draft",
    "DraftRepository",
    "DraftState",
    "GenerationOptions",
    "ImageUse",
    "Limits",
    "MissingDriverError",
    "Refusal",
    "Stats",
    "Task",
    "TaskRepository",
    "TaskState",
    "TimingRepository",
    "UserSettings",
    "UserSettingsRepository",
    "open_database",
]
