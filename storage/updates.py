"""Telegram updates: each handled once, whichever process receives it and however often."""

from __future__ import annotations

import time
from enum import Enum
from typing import NamedTuple

from storage.database import Database

# Telegram keeps an update for at most a day: older records can be forgotten.
KEEP = 24 * 3600.0
_TAKE_NEW = """
INSERT INTO updates (update_id, holder, until, body) VALUES (?, ?, ?, ?)
ON CONFLICT (update_id) DO NOTHING
"""
# A holder that did not finish in time (its process died) is taken over.
_TAKE_OVER = """
UPDATE updates SET holder = ?, until = ?
WHERE update_id = ? AND handled_at IS NULL AND until < ?
"""
_GET = "SELECT holder, handled_at FROM updates WHERE update_id = ?"
_DONE = "UPDATE updates SET handled_at = ? WHERE update_id = ? AND holder = ?"
_RENEW = """
UPDATE updates SET until = ? WHERE update_id = ? AND holder = ? AND handled_at IS NULL
"""
_FORGET_ANSWERS = """
DELETE FROM update_answers
WHERE update_id IN (SELECT update_id FROM updates WHERE handled_at < ?)
"""
_FORGET = "DELETE FROM updates WHERE handled_at < ?"
_ANSWERS = "SELECT seq, request, answer FROM update_answers WHERE update_id = ? ORDER BY seq"
_ADD_ANSWER = """
INSERT INTO update_answers (update_id, seq, request, answer) VALUES (?, ?, ?, ?)
ON CONFLICT (update_id, seq) DO NOTHING
"""
# Taken and not finished in time: its holder died (Telegram will not offer it again).
_ABANDONED = """
SELECT update_id, body FROM updates
WHERE handled_at IS NULL AND until < ? AND body IS NOT NULL
ORDER BY update_id LIMIT ?
"""


class Answer(NamedTuple):
    """The `seq`-th request an update's handling made (`request`: what it was) and the JSON
    of Telegram's answer."""

    seq: int
    request: str
    answer: str


class Turn(Enum):
    """Whose an update is."""

    MINE = "mine"
    # Mine, after a holder that did not finish in time: what it sent is in its answers.
    TAKEN_OVER = "taken over"
    # Handled already: nothing more to do.
    DONE = "done"
    # Being handled by another holder whose time has not run out.
    BUSY = "busy"


class UpdateRepository:
    """Records which updates are being handled, by whom until when, and which are done."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def take(
        self, update_id: int, holder: str, until: float, body: str | None = None
    ) -> Turn:
        """Take the update (its JSON `body` kept) for `holder` until `until`, unless it is done
        or held by another."""
        now = time.time()
        if await self._db.execute(_TAKE_NEW, (update_id, holder, until, body)) == 1:
            return Turn.MINE
        if await self._db.execute(_TAKE_OVER, (holder, until, update_id, now)) == 1:
            return Turn.TAKEN_OVER
        row = await self._db.fetchone(_GET, (update_id,))
        if row is None:  # forgotten meanwhile: older than a day, so long handled
            return Turn.DONE
        if row["handled_at"] is not None:
            return Turn.DONE
        return Turn.MINE if row["holder"] == holder else Turn.BUSY

    async def renew(self, update_id: int, holder: str, until: float) -> bool:
        """Extend `holder`'s time on the update; False if it is no longer theirs."""
        return await self._db.execute(_RENEW, (until, update_id, holder)) == 1

    async def done(self, update_id: int, holder: str) -> None:
        """Record that `holder` finished handling the update."""
        await self._db.execute(_DONE, (time.time(), update_id, holder))

    async def abandoned(self, now: float, limit: int = 100) -> list[tuple[int, str]]:
        """Updates whose holder did not finish them in time: (id, JSON body) pairs."""
        rows = await self._db.fetchall(_ABANDONED, (now, limit))
        return [(int(row[0]), str(row[1])) for row in rows]

    async def answers(self, update_id: int) -> list[Answer]:
        """What handling the update sent so far, in order."""
        rows = await self._db.fetchall(_ANSWERS, (update_id,))
        return [Answer(int(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def add_answer(self, update_id: int, answer: Answer) -> None:
        """Record a request handling the update made, and Telegram's answer to it."""
        await self._db.execute(_ADD_ANSWER, (update_id, answer.seq, answer.request, answer.answer))

    async def forget(self, now: float) -> int:
        """Drop records of updates handled more than a day ago; how many."""
        async with self._db.transaction() as tx:
            await tx.execute(_FORGET_ANSWERS, (now - KEEP,))
            return await tx.execute(_FORGET, (now - KEEP,))
