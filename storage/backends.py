"""What one process found out about a backend that every process should know."""

from __future__ import annotations

from storage.database import Database

_LOST = """
INSERT INTO backend_notes (backend, callbacks_lost_at) VALUES (?, ?)
ON CONFLICT (backend) DO UPDATE SET callbacks_lost_at = excluded.callbacks_lost_at
"""
_HEARD = "UPDATE backend_notes SET callbacks_lost_at = NULL WHERE backend = ?"
_WITHOUT = "SELECT backend FROM backend_notes WHERE callbacks_lost_at IS NOT NULL"


class BackendNotes:
    """Backends whose callbacks stopped reaching the bot (their tasks are polled meanwhile)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def callbacks_lost(self, backend: str, at: float) -> None:
        """A task of `backend` ended and its callback never came."""
        await self._db.execute(_LOST, (backend, at))

    async def callbacks_heard(self, backend: str) -> None:
        """A callback of `backend` arrived again."""
        await self._db.execute(_HEARD, (backend,))

    async def without_callbacks(self) -> set[str]:
        """The backends whose callbacks seem lost."""
        return {str(row[0]) for row in await self._db.fetchall(_WITHOUT)}
