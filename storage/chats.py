"""Chats that blocked the bot, so deliveries to them stop instead of failing again and again."""

from __future__ import annotations

import time

from storage.database import Database

_BLOCK = """
INSERT INTO chats (chat_id, blocked_at) VALUES (?, ?)
ON CONFLICT (chat_id) DO UPDATE SET blocked_at = excluded.blocked_at
"""
_UNBLOCK = "UPDATE chats SET blocked_at = NULL WHERE chat_id = ? AND blocked_at IS NOT NULL"
_BLOCKED = "SELECT 1 FROM chats WHERE chat_id = ? AND blocked_at IS NOT NULL"


class ChatRepository:
    """Which chats refuse the bot's messages."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def block(self, chat_id: int) -> None:
        """Telegram said the bot may not write here (blocked, or removed from the group)."""
        await self._db.execute(_BLOCK, (chat_id, time.time()))

    async def unblock(self, chat_id: int) -> bool:
        """The chat wrote to the bot again; True if it had been blocked."""
        return await self._db.execute(_UNBLOCK, (chat_id,)) == 1

    async def is_blocked(self, chat_id: int) -> bool:
        """Whether sending to this chat is known to fail."""
        return await self._db.fetchone(_BLOCKED, (chat_id,)) is not None
