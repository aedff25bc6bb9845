"""SQLite storage: the database, its migrations and the repositories."""

from storage.database import Database
from storage.drafts import DraftRepository
from storage.models import Draft, DraftState, GenerationOptions, Task, TaskState, UserSettings
from storage.tasks import TaskRepository
from storage.users import UserSettingsRepository

__all__ = [
    "Database",
    "Draft",
    "DraftRepository",
    "DraftState",
    "GenerationOptions",
    "Task",
    "TaskRepository",
    "TaskState",
    "UserSettings",
    "UserSettingsRepository",
]
