"""Rate limits shared by every process on one database: slots taken in a sliding window."""

from __future__ import annotations

import time

from storage.database import Database
from storage.dialect import Dialect

_FORGET = "DELETE FROM rate_slots WHERE gate = ? AND at <= ?"
_COUNT = "SELECT COUNT(*), MIN(at) FROM rate_slots WHERE gate = ?"
_TAKE = "INSERT INTO rate_slots (gate, at) VALUES (?, ?)"
# One clock for every replica: the database server's (hosts' clocks may differ).
_NOW = {
    Dialect.POSTGRES: "SELECT extract(epoch FROM clock_timestamp())::float8",
    Dialect.SQLITE: "SELECT NULL",
}


class RateSlots:
    """At most `limit` slots of a gate per sliding `window` seconds, across processes."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(self, gate: str, limit: int, window: float) -> float:
        """Take a slot now: 0.0; or, when the window is full, the seconds until one frees."""
        async with self._db.transaction() as tx:
            await tx.lock(f"kling-bot:rate:{gate}")
            row = await tx.fetchone(_NOW[tx.dialect])
            now = float(row[0]) if row is not None and row[0] is not None else time.time()
            await tx.execute(_FORGET, (gate, now - window))
            counted = await tx.fetchone(_COUNT, (gate,))
            used = int(counted[0]) if counted is not None else 0
            if used < limit:
                await tx.insert(_TAKE, (gate, now))
                return 0.0
            oldest = float(counted[1]) if counted is not None else now
            return max(oldest + window - now, 0.001)
