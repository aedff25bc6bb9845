"""How long finished generations took, per kind of task: the samples the bot learns from."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import defaultdict
from pathlib import Path

import aiosqlite

from storage.database import Database

_ADD = "INSERT INTO run_times (kind, seconds, finished_at) VALUES (?, ?, ?)"
# Only the newest `keep` samples of a kind are kept.
_TRIM = """
DELETE FROM run_times WHERE kind = ?1 AND id NOT IN (
    SELECT id FROM run_times WHERE kind = ?1 ORDER BY id DESC LIMIT ?2
)
"""
_OF_KIND = """
SELECT seconds FROM run_times WHERE kind = ? AND finished_at >= ? ORDER BY id DESC LIMIT ?
"""
_RECENT = """
SELECT kind, seconds FROM run_times WHERE finished_at >= ? ORDER BY kind, id DESC
"""


class TimingRepository:
    """Generation times by kind (backend, model, mode, duration, sound)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self, kind: str, seconds: float, finished_at: float, *, keep: int, since: float
    ) -> list[float]:
        """Record one sample; return the kind's newest `keep` samples since `since`."""
        async with self._db.transaction() as tx:
            await tx.insert(_ADD, (kind, seconds, finished_at))
            await tx.execute(_TRIM, (kind, keep))
            rows = await tx.fetchall(_OF_KIND, (kind, since, keep))
        return [float(row[0]) for row in rows]

    async def recent(self, since: float, keep: int) -> dict[str, list[float]]:
        """Every kind's newest `keep` samples finished since `since`."""
        found: dict[str, list[float]] = defaultdict(list)
        for kind, seconds in await self._db.fetchall(_RECENT, (since,)):
            if len(found[kind]) < keep:
                found[kind].append(float(seconds))
        return dict(found)


async def read_run_times(path: Path, kind: str, since: float, keep: int) -> list[float]:
    """A kind's newest samples in the database at `path`, opened read-only; [] if none."""
    uri = await asyncio.to_thread(_readable_uri, path)
    if uri is None:
        return []
    try:
        async with aiosqlite.connect(uri, uri=True) as conn:
            cursor = await conn.execute(_OF_KIND, (kind, since, keep))
            rows = await cursor.fetchall()
    except sqlite3.Error:  # an older database without the table, or not a database at all
        return []
    return [float(row[0]) for row in rows]


def _readable_uri(path: Path) -> str | None:
    """A read-only SQLite URI of an existing file, else None."""
    return f"{path.resolve().as_uri()}?mode=ro" if path.is_file() else None
