"""Tasks: claimed drafts on their way through the provider to the user."""

from __future__ import annotations

import time
from typing import Any

from storage.database import Database
from storage.models import Task, TaskState

_CLAIM_DRAFT = """
UPDATE drafts SET state = 'submitted', updated_at = ? WHERE id = ? AND state = 'open'
"""
_INSERT_FROM_DRAFT = """
INSERT INTO tasks (draft_id, user_id, chat_id, source_message_id, status_message_id,
                   image_file_id, extra_images, prompt, options, lang, state, callback_secret,
                   created_at, updated_at)
SELECT id, user_id, chat_id, source_message_id, message_id, image_file_id, extra_images,
       prompt, options, lang, 'submitting', ?, ?, ?
FROM drafts WHERE id = ?
"""
_GET = "SELECT * FROM tasks WHERE id = ?"
_FOR_USER = "SELECT * FROM tasks WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
_COUNT_FOR_USER = "SELECT COUNT(*) FROM tasks WHERE user_id = ?"
_IN_STATES = "SELECT * FROM tasks WHERE state IN ({}) ORDER BY id"
_DUE = """
SELECT * FROM tasks WHERE next_poll_at IS NOT NULL AND next_poll_at <= ?
ORDER BY next_poll_at LIMIT ?
"""
_NEXT_DUE = "SELECT MIN(next_poll_at) FROM tasks WHERE next_poll_at > ?"
_SCHEDULE = "UPDATE tasks SET next_poll_at = ? WHERE id = ? AND next_poll_at IS NOT NULL"
_UNSCHEDULE = "UPDATE tasks SET next_poll_at = NULL WHERE id = ?"
_COUNT_POLL = "UPDATE tasks SET polls = polls + 1, next_poll_at = ? WHERE id = ?"

# Columns that `advance` may set alongside the state.
_FIELDS = frozenset(
    {
        "provider_task_id",
        "status_message_id",
        "result_url",
        "error",
        "error_detail",
        "next_poll_at",
        "submitted_at",
        "finished_at",
        "delivered_at",
    }
)


class TaskRepository:
    """Reads and writes tasks; state changes only ever move forward."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_draft(self, draft_id: int, callback_secret: str) -> Task | None:
        """Turn an open draft into a task, once: a second claim returns None."""
        now = time.time()
        async with self._db.transaction() as tx:
            if await tx.execute(_CLAIM_DRAFT, (now, draft_id)) != 1:
                return None
            task_id = await tx.insert(_INSERT_FROM_DRAFT, (callback_secret, now, now, draft_id))
            row = await tx.fetchone(_GET, (task_id,))
        assert row is not None
        return Task.from_row(row)

    async def get(self, task_id: int) -> Task | None:
        """The task with this id, if any."""
        row = await self._db.fetchone(_GET, (task_id,))
        return Task.from_row(row) if row else None

    async def advance(self, task_id: int, state: TaskState, **fields: Any) -> Task | None:
        """Move a task to `state` if that is forward from where it is; None if it was not."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"not task fields: {sorted(unknown)}")
        earlier = [s.value for s in TaskState if s.rank < state.rank]
        if not earlier:
            return None
        assignments = ", ".join(f"{name} = ?" for name in fields)
        sql = (
            f"UPDATE tasks SET state = ?, {assignments + ', ' if fields else ''}updated_at = ? "
            f"WHERE id = ? AND state IN ({', '.join('?' * len(earlier))})"
        )
        params = [state.value, *fields.values(), time.time(), task_id, *earlier]
        async with self._db.transaction() as tx:
            if await tx.execute(sql, params) != 1:
                return None
            row = await tx.fetchone(_GET, (task_id,))
        assert row is not None
        return Task.from_row(row)

    async def for_user(self, user_id: int, limit: int = 10, offset: int = 0) -> list[Task]:
        """The user's tasks, newest first."""
        rows = await self._db.fetchall(_FOR_USER, (user_id, limit, offset))
        return [Task.from_row(row) for row in rows]

    async def count_for_user(self, user_id: int) -> int:
        """How many tasks the user has ever made."""
        row = await self._db.fetchone(_COUNT_FOR_USER, (user_id,))
        return int(row[0]) if row else 0

    async def in_states(self, *states: TaskState) -> list[Task]:
        """Every task in one of `states`, oldest first."""
        sql = _IN_STATES.format(", ".join("?" * len(states)))
        rows = await self._db.fetchall(sql, [s.value for s in states])
        return [Task.from_row(row) for row in rows]

    async def due(self, now: float, limit: int) -> list[Task]:
        """Tasks whose next check is due, most overdue first."""
        rows = await self._db.fetchall(_DUE, (now, limit))
        return [Task.from_row(row) for row in rows]

    async def next_due_after(self, moment: float) -> float | None:
        """When the earliest check scheduled after `moment` is due."""
        row = await self._db.fetchone(_NEXT_DUE, (moment,))
        return float(row[0]) if row and row[0] is not None else None

    async def schedule(self, task_id: int, at: float) -> bool:
        """Move a scheduled task's next check to `at` (a wake-up); False if it is not tracked."""
        return await self._db.execute(_SCHEDULE, (at, task_id)) == 1

    async def unschedule(self, task_id: int) -> None:
        """Stop checking a task."""
        await self._db.execute(_UNSCHEDULE, (task_id,))

    async def count_poll(self, task_id: int, next_poll_at: float) -> None:
        """Record one provider check and when the next one is due."""
        await self._db.execute(_COUNT_POLL, (next_poll_at, task_id))
