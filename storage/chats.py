"""Chats: those that blocked the bot (deliveries to them stop), and when each was last edited."""

from __future__ import annotations

import time

from storage.database import Database

_BLOCK = """
INSERT INTO chats (chat_id, blocked_at) VALUES (?, ?)
ON CONFLICT (chat_id) DO UPDATE SET blocked_at = excluded.blocked_at
"""
_UNBLOCK = "UPDATE chats SET blocked_at = NULL WHERE chat_id = ? AND blocked_at IS NOT NULL"
_ALL_BLOCKED = "SELECT chat_id FROM chats WHERE blocked_at IS NOT NULL"
_IS_BLOCKED = "SELECT 1 FROM chats WHERE chat_id = ? AND blocked_at IS NOT NULL"
# An edit is allowed once `interval` has passed since the chat's last one, whichever process
# made it.
_TAKE_EDIT = """
INSERT INTO chats (chat_id, edited_at) VALUES (?, ?)
ON CONFLICT (chat_id) DO UPDATE SET edited_at = excluded.edited_at
WHERE chats.edited_at IS NULL OR chats.edited_at <= ?
"""
_EDITED = """
INSERT INTO chats (chat_id, edited_at) VALUES (?, ?)
ON CONFLICT (chat_id) DO UPDATE SET edited_at = excluded.edited_at
"""


class ChatRepository:
    """Which chats refuse the bot's messages."""

    def __init__(self, db: Database, *, shared: bool = False) -> None:
        self._db = db
        # Other processes write here too (replicas on PostgreSQL): nothing is kept in memory.
        self.shared = shared
        # Else asked on every update and every send: kept in memory, loaded once, written through.
        self._blocked: set[int] | None = None

    async def _load(self) -> set[int]:
        if self.shared:
            return set()
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
        if self.shared:
            return await self._db.execute(_UNBLOCK, (chat_id,)) == 1
        blocked = await self._load()
        if chat_id not in blocked:
            return False
        blocked.discard(chat_id)
        return await self._db.execute(_UNBLOCK, (chat_id,)) == 1

    async def is_blocked(self, chat_id: int) -> bool:
        """Whether sending to this chat is known to fail."""
        if self.shared:
            return await self._db.fetchone(_IS_BLOCKED, (chat_id,)) is not None
        return chat_id in await self._load()

    async def take_edit(self, chat_id: int, now: float, interval: float) -> bool:
        """Whether an edit in the chat may be made now (none for `interval`); if so, it counts."""
        return await self._db.execute(_TAKE_EDIT, (chat_id, now, now - interval)) == 1

    async def edited(self, chat_id: int, now: float) -> None:
        """Record an edit made in the chat."""
        await self._db.execute(_EDITED, (chat_id, now))
