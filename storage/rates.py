"""Rate limits shared by every process on one database: slots taken in a sliding window."""

from __future__ import annotations

import time
from typing import NamedTuple

from storage.database import Database
from storage.dialect import Dialect

_FORGET = "DELETE FROM rate_slots WHERE gate = ? AND at <= ?"
# Gates no longer used (a group chat written to once) leave their last slots: all slots
# this old are dropped now and then (no gate's window is near an hour).
_FORGET_ALL = "DELETE FROM rate_slots WHERE at <= ?"
STALE = 3600.0
FORGET_EVERY = 600.0
# Open slots (calls not answered yet) are kept in the future, so they count until answered.
_COUNT = "SELECT COUNT(*), MIN(CASE WHEN at <= ? THEN at END) FROM rate_slots WHERE gate = ?"
_TAKE = "INSERT INTO rate_slots (gate, at) VALUES (?, ?)"
# One clock for every replica: the database server's (hosts' clocks may differ).
_NOW = {
    Dialect.POSTGRES: "SELECT extract(epoch FROM clock_timestamp())::float8",
    Dialect.SQLITE: "SELECT NULL",
}
_ANSWERED = {
    Dialect.POSTGRES: "UPDATE rate_slots SET at = extract(epoch FROM clock_timestamp())::float8"
    " WHERE id = ?",
    Dialect.SQLITE: "UPDATE rate_slots SET at = ? WHERE id = ?",
}


class Taken(NamedTuple):
    """A slot taken (its id), or how long to wait before asking again."""

    slot: int | None
    wait: float


class RateSlots:
    """At most `limit` calls of a gate per sliding `window` seconds, across processes.

    A call counts from the moment it was let through until `window` after its answer: the
    provider counts it when it arrives, somewhere in between, so the limit holds by the
    provider's clock however long the request travelled.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._forgotten_at = 0.0

    async def take(self, gate: str, limit: int, window: float, *, hold: float) -> Taken:
        """Take a slot that stays open for at most `hold` seconds unless answered sooner."""
        async with self._db.transaction() as tx:
            await tx.lock(f"kling-bot:rate:{gate}")
            row = await tx.fetchone(_NOW[tx.dialect])
            now = float(row[0]) if row is not None and row[0] is not None else time.time()
            await tx.execute(_FORGET, (gate, now - window))
            if now - self._forgotten_at >= FORGET_EVERY:
                self._forgotten_at = now
                await tx.execute(_FORGET_ALL, (now - STALE,))
            counted = await tx.fetchone(_COUNT, (now, gate))
            used = int(counted[0]) if counted is not None else 0
            if used < limit:
                return Taken(await tx.insert(_TAKE, (gate, now + hold)), 0.0)
            oldest = counted[1] if counted is not None else None
            if oldest is None:
                # Every slot is still open: one frees a window after its answer; look again.
                return Taken(None, window / limit)
            return Taken(None, max(float(oldest) + window - now, 0.001))

    async def answered(self, slot: int) -> None:
        """The call of `slot` got its answer (or failed): it counts for a window from now."""
        sql = _ANSWERED[self._db.dialect]
        params = (slot,) if self._db.dialect is Dialect.POSTGRES else (time.time(), slot)
        await self._db.execute(sql, params)
