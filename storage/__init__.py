"""SQLite storage: the database, its migrations and the repositories."""

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
from storage.tasks import TaskRepository
from storage.users import UserSettingsRepository

__all__ = [
    "AlbumImage",
    "Database",
    "Draft",
    "DraftRepository",
    "DraftState",
    "GenerationOptions",
    "ImageUse",
    "Task",
    "TaskRepository",
    "TaskState",
    "UserSettings",
    "UserSettingsRepository",
]
