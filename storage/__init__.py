"""SQLite storage: the database, its migrations and the repositories."""

from storage.chats import ChatRepository
from storage.database import Database
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
    "Draft",
    "DraftRepository",
    "DraftState",
    "GenerationOptions",
    "ImageUse",
    "Limits",
    "Refusal",
    "Stats",
    "Task",
    "TaskRepository",
    "TaskState",
    "TimingRepository",
    "UserSettings",
    "UserSettingsRepository",
]
