"""Chats that blocked the bot, so deliveries to them stop instead of failing again and again."""

from __future__ import annotations

import time

from storage.database import Database

_BLOCK = """
INSERT INTO chats (chat_id, blocked_at) VALUES (?, ?)
ON CONFLICT (chat_id) DO UPDATE SET blocked_at = excluded.blocked_at
"""
_UNBLOCK = "UPDATE chats SET blocked_at = NULL WHERE chat_id = ? AND blocked_at IS NOT NULL"
_ALL_BLOCKED = "SELECT chat_id FROM chats WHERE blocked_at IS NOT NULL"


class ChatRepository:
    """Which chats refuse the bot's messages."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Asked on every update and every send: kept in memory, loaded once, written through.
        self._blocked: set[int] | None = None

    async def _load(self) -> set[int]:
        if self._blocked is None:
            rows = await self._db.fetchall(_ALL_BLOCKED)
            self._blocked = {int(row[0]) for row in rows}
        return self._blocked

    async def block(self, chat_id: int) -> None:
        """Telegram said the bot may not write here (blocked, or removed from the group)."""
        await self._db.execute(_BLOCK, (chat_id, time.time()))
        (await self._load()).add(chat_id)

    async def unblock(self, chat_id: int) -> bool:
        """The chat wrote to the bot again; True if it had been blocked."""
        blocked = await self._load()
        if chat_id not in blocked:
            return False
        blocked.discard(chat_id)
        return await self._db.execute(_UNBLOCK, (chat_id,)) == 1

    async def is_blocked(self, chat_id: int) -> bool:
        """Whether sending to this chat is known to fail."""
        return chat_id in await self._load()
