"""Per-user settings."""

from __future__ import annotations

import json
import time

from storage.database import Database
from storage.models import GenerationOptions, UserSettings

_GET = "SELECT user_id, language, options FROM user_settings WHERE user_id = ?"
_SAVE_OPTIONS = """
INSERT INTO user_settings (user_id, options, updated_at) VALUES (?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET options = excluded.options, updated_at = excluded.updated_at
"""
_SAVE_LANGUAGE = """
INSERT INTO user_settings (user_id, language, updated_at) VALUES (?, ?, ?)
ON CONFLICT (user_id) DO UPDATE SET language = excluded.language,
                                    updated_at = excluded.updated_at
"""


class UserSettingsRepository:
    """Remembers each user's last options and chosen language."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, user_id: int) -> UserSettings:
        """The user's settings (empty ones for a new user)."""
        row = await self._db.fetchone(_GET, (user_id,))
        if row is None:
            return UserSettings(user_id=user_id)
        options = json.loads(row["options"]) if row["options"] else None
        return UserSettings(user_id=user_id, language=row["language"], options=options)

    async def save_options(self, user_id: int, options: GenerationOptions) -> None:
        """Remember these options as the user's defaults for new drafts."""
        await self._db.execute(_SAVE_OPTIONS, (user_id, options.model_dump_json(), time.time()))

    async def save_language(self, user_id: int, language: str) -> None:
        """Remember the user's language choice."""
        await self._db.execute(_SAVE_LANGUAGE, (user_id, language, time.time()))
