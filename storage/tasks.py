"""Tasks: claimed drafts on their way through the provider to the user."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from storage.database import Database, Session
from storage.dialect import Dialect
from storage.models import Task, TaskState

_CLAIM_DRAFT = """
UPDATE drafts SET state = 'submitted', updated_at = ? WHERE id = ? AND state = 'open'
"""
# A new task is due for the sweep after UNSTARTED: its submitter takes it at once, or the
# process died before it could.
_INSERT_FROM_DRAFT = """
INSERT INTO tasks (draft_id, user_id, chat_id, source_message_id, status_message_id,
                   image_file_id, extra_images, prompt, options, lang, state, callback_secret,
                   created_at, updated_at, next_poll_at)
SELECT id, user_id, chat_id, source_message_id, message_id, image_file_id, extra_images,
       prompt, options, lang, 'submitting', ?, ?, ?, ?
FROM drafts WHERE id = ?
"""
_GET = "SELECT * FROM tasks WHERE id = ?"
_OWNER = "SELECT user_id FROM tasks WHERE id = ?"
# The task about to be retried, locked until the retry commits (SQLite: the whole file is).
_GET_FOR_RETRY = {
    Dialect.SQLITE: _GET,
    Dialect.POSTGRES: _GET + " FOR UPDATE",
}
_ACTIVE = "SELECT COUNT(*) FROM tasks WHERE user_id = ? AND state NOT IN ('delivered', 'failed')"
_SINCE = "SELECT COUNT(*) FROM tasks WHERE user_id = ? AND created_at >= ?"
_COPY_AS_DRAFT = """
INSERT INTO drafts (user_id, chat_id, source_message_id, message_id, image_file_id,
                    extra_images, prompt, options, lang, state, created_at, updated_at)
SELECT user_id, chat_id, source_message_id, ?, image_file_id, extra_images, prompt, options,
       lang, 'open', ?, ?
FROM tasks WHERE id = ?
"""
_MARK_RETRIED = """
UPDATE tasks SET retried_as = ?, updated_at = ?
WHERE id = ? AND retried_as IS NULL AND state = 'failed'
"""
_CREATE_STARTED = """
UPDATE tasks SET create_started_at = ?, updated_at = ? WHERE id = ? AND state = 'submitting'
"""
_SENDING = """
UPDATE tasks SET sending_at = ?, updated_at = ? WHERE id = ? AND state = 'delivering'
"""
# Leases: a task being submitted or delivered belongs to the claim named in `lease_owner`
# until `next_poll_at`; then anyone may take it, once (the due moment seen must still hold).
_LEASED = "state IN ('submitting', 'delivering')"
_HELD = f" AND lease_owner = ? AND {_LEASED}"
_TAKE = f"""
UPDATE tasks SET lease_owner = ?, next_poll_at = ?, updated_at = ?
WHERE id = ? AND next_poll_at = ? AND {_LEASED}
"""
_RENEW = "UPDATE tasks SET next_poll_at = ? WHERE id = ?" + _HELD
_HEARD = "UPDATE tasks SET callback_at = ? WHERE id = ? AND callback_at IS NULL"
_EXPIRE = f"""
UPDATE tasks SET next_poll_at = ? WHERE {_LEASED} AND (next_poll_at IS NULL OR next_poll_at > ?)
"""
_REVIVE = """
UPDATE tasks SET state = 'succeeded', result_url = ?, error = NULL, next_poll_at = ?,
                 finished_at = ?, updated_at = ?
WHERE id = ? AND state = 'failed' AND error = 'timeout'
"""
# A create whose outcome is unknown: failed only while nothing has named its provider task.
_GIVE_UP_CREATE = """
UPDATE tasks SET state = 'failed', error = 'uncertain', error_detail = NULL, next_poll_at = NULL,
                 finished_at = ?, updated_at = ?
WHERE id = ? AND state = 'submitting' AND provider_task_id IS NULL
"""
# The provider named the task after all (a callback): track it from the start.
_ADOPT = """
UPDATE tasks SET state = 'queued', provider_task_id = ?, error = NULL, error_detail = NULL,
                 submitted_at = ?, next_poll_at = ?, finished_at = NULL, updated_at = ?
WHERE id = ? AND provider_task_id IS NULL AND create_started_at IS NOT NULL
  AND (state = 'submitting' OR (state = 'failed' AND error = 'uncertain'))
"""
_FOR_USER = "SELECT * FROM tasks WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?"
_COUNT_FOR_USER = "SELECT COUNT(*) FROM tasks WHERE user_id = ?"
_COUNT_NEWER = "SELECT COUNT(*) FROM tasks WHERE user_id = ? AND id > ?"
_IN_STATES = "SELECT * FROM tasks WHERE state IN ({}) ORDER BY id"
_DUE = """
SELECT * FROM tasks WHERE next_poll_at IS NOT NULL AND next_poll_at <= ?{}
ORDER BY next_poll_at LIMIT ?
"""
_NEXT_DUE = "SELECT MIN(next_poll_at) FROM tasks WHERE next_poll_at > ?"
_SCHEDULE = f"""
UPDATE tasks SET next_poll_at = ? WHERE id = ? AND next_poll_at IS NOT NULL AND NOT {_LEASED}
"""
_UNSCHEDULE = "UPDATE tasks SET next_poll_at = NULL WHERE id = ?"
_UNSENT = "UPDATE tasks SET sending_at = NULL, updated_at = ? WHERE id = ? AND state = 'delivering'"
# A delivery the chat turned away: not tried again until the chat writes (`deliver_in_chat`),
# parked only while the chat still blocks the bot (it may have written meanwhile).
_WAIT_FOR_CHAT = """
UPDATE tasks SET next_poll_at = NULL, lease_owner = NULL, updated_at = ?
WHERE id = ? AND lease_owner = ? AND state = 'delivering' AND EXISTS (
    SELECT 1 FROM chats WHERE chats.chat_id = tasks.chat_id AND chats.blocked_at IS NOT NULL
)
"""
_DUE_AGAIN = """
UPDATE tasks SET next_poll_at = ?, lease_owner = NULL, updated_at = ?
WHERE id = ? AND lease_owner = ? AND state = 'delivering'
"""
# Deliveries given up on for now (refused for a day): due again when a process starts.
_RESUME_DELIVERIES = """
UPDATE tasks SET next_poll_at = ?
WHERE state = 'delivering' AND next_poll_at IS NULL AND lease_owner IS NULL AND NOT EXISTS (
    SELECT 1 FROM chats WHERE chats.chat_id = tasks.chat_id AND chats.blocked_at IS NOT NULL
)
"""
_DELIVER_IN_CHAT = """
UPDATE tasks SET next_poll_at = ?, lease_owner = NULL, updated_at = ?, delivery_began_at = ?
WHERE chat_id = ? AND state = 'delivering' AND next_poll_at IS NULL
"""
_RETRY_DELIVERY = """
UPDATE tasks SET next_poll_at = ?, lease_owner = NULL WHERE id = ? AND state = 'delivering'
"""
_COUNT_POLL = f"""
UPDATE tasks SET polls = polls + 1, next_poll_at = ?
WHERE id = ? AND next_poll_at IS NOT NULL AND NOT {_LEASED}
"""
# The same, only if the look is still due when it was seen due: one replica takes each look.
_CLAIM_POLL = _COUNT_POLL + " AND next_poll_at = ?"
_TRACKED = """
SELECT * FROM tasks
WHERE state IN ('queued', 'running') AND next_poll_at IS NOT NULL
  AND provider_task_id IS NOT NULL AND {model} LIKE ? || ':%'
ORDER BY id
"""
_HASTEN = """
UPDATE tasks SET next_poll_at = {least}(
    next_poll_at, ?1 + {greatest}(?2, (?1 - COALESCE(submitted_at, created_at)) * ?3)
)
WHERE state IN ('queued', 'running') AND next_poll_at IS NOT NULL
  AND {model} LIKE ?4 || ':%'
"""
# The model id inside the options document, and the scalar MIN/MAX, in each dialect.
_SQLITE = {"model": "json_extract(options, '$.model')", "least": "MIN", "greatest": "MAX"}
_POSTGRES = {"model": "(options ->> 'model')", "least": "LEAST", "greatest": "GREATEST"}
_TRACKED_IN = {
    Dialect.SQLITE: _TRACKED.format(**_SQLITE),
    Dialect.POSTGRES: _TRACKED.format(**_POSTGRES),
}
_HASTEN_IN = {
    Dialect.SQLITE: _HASTEN.format(**_SQLITE),
    Dialect.POSTGRES: _HASTEN.format(**_POSTGRES),
}

# Columns that `advance` may set alongside the state.
_FIELDS = frozenset(
    {
        "provider_task_id",
        "status_message_id",
        "result_url",
        "error",
        "error_detail",
        "next_poll_at",
        "lease_owner",
        "create_started_at",
        "submitted_at",
        "finished_at",
        "delivered_at",
        "delivery_began_at",
    }
)


class Refusal(StrEnum):
    """Why no task was made."""

    ALREADY = "already"
    ACTIVE_LIMIT = "active_limit"
    DAILY_LIMIT = "daily_limit"


@dataclass(frozen=True)
class Limits:
    """How much one user may have going: tasks unfinished at once, and per 24 hours."""

    active: int | None = None
    daily: int | None = None


DAY = 24 * 3600
# Seconds a new task waits for its submitter to take it before the sweep may (the bot passes
# its lease length: a process that dies before its submitter starts leaves it no longer).
UNSTARTED = 60.0


@dataclass(frozen=True)
class Stats:
    """Counts for the admins' /stats."""

    by_state: dict[str, int]
    by_model: dict[str, int]
    by_day: dict[str, int]
    recent_failures: list[Task]


_BY_STATE = "SELECT state, COUNT(*) FROM tasks GROUP BY state ORDER BY COUNT(*) DESC"
_BY_MODEL = """
SELECT {model} AS model, COUNT(*) FROM tasks GROUP BY model ORDER BY COUNT(*) DESC
"""
_BY_DAY = """
SELECT {day} AS day, COUNT(*) FROM tasks WHERE created_at >= ?
GROUP BY day ORDER BY day DESC
"""
_BY_MODEL_IN = {
    Dialect.SQLITE: _BY_MODEL.format(**_SQLITE),
    Dialect.POSTGRES: _BY_MODEL.format(**_POSTGRES),
}
# The UTC day of an epoch timestamp, as YYYY-MM-DD.
_BY_DAY_IN = {
    Dialect.SQLITE: _BY_DAY.format(day="date(created_at, 'unixepoch')"),
    Dialect.POSTGRES: _BY_DAY.format(
        day="to_char(to_timestamp(created_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    ),
}
_FAILURES = "SELECT * FROM tasks WHERE state = 'failed' ORDER BY finished_at DESC LIMIT ?"


class _Undo(Exception):
    """Raised inside a transaction to roll it back."""


async def _lock_user(tx: Session, user_id: int) -> None:
    """Make the user's claims and retries wait for each other until this transaction ends."""
    await tx.lock(f"kling-bot:user:{user_id:d}")


class TaskRepository:
    """Reads and writes tasks; state changes only ever move forward."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim_draft(
        self,
        draft_id: int,
        callback_secret: str,
        user_id: int,
        limits: Limits = Limits(),
        pickup: float = UNSTARTED,
    ) -> Task | Refusal:
        """Turn an open draft into a task, once, within the user's limits; the sweep may take
        it `pickup` seconds on if its submitter has not."""
        now = time.time()
        # Counted and claimed under one lock on the user: limits checked in a transaction of
        # their own, or by transactions that do not wait for each other, would let claims made
        # at once all pass them.
        async with self._db.transaction() as tx:
            await _lock_user(tx, user_id)
            refusal = await self._over_limits(tx, user_id, limits, now)
            if refusal is not None:
                return refusal
            if await tx.execute(_CLAIM_DRAFT, (now, draft_id)) != 1:
                return Refusal.ALREADY
            task_id = await tx.insert(
                _INSERT_FROM_DRAFT, (callback_secret, now, now, now + pickup, draft_id)
            )
            row = await tx.fetchone(_GET, (task_id,))
        assert row is not None
        return Task.from_row(row)

    async def retry(
        self,
        task_id: int,
        callback_secret: str,
        status_message_id: int | None,
        limits: Limits,
        pickup: float = UNSTARTED,
    ) -> Task | Refusal:
        """A new task with a failed task's photos, prompt and options, made once per failure."""
        now = time.time()
        owner = await self._db.fetchone(_OWNER, (task_id,))
        if owner is None:
            return Refusal.ALREADY
        # The user's lock orders the retry with their claims (limits); the task's row lock and
        # the check that this retry marked it each keep two retries of one task from both
        # copying it.
        try:
            async with self._db.transaction() as tx:
                await _lock_user(tx, int(owner["user_id"]))
                old = await tx.fetchone(_GET_FOR_RETRY[tx.dialect], (task_id,))
                if old is None or old["state"] != "failed" or old["retried_as"] is not None:
                    return Refusal.ALREADY
                refusal = await self._over_limits(tx, int(old["user_id"]), limits, now)
                if refusal is not None:
                    return refusal
                draft_id = await tx.insert(_COPY_AS_DRAFT, (status_message_id, now, now, task_id))
                await tx.execute(_CLAIM_DRAFT, (now, draft_id))
                new_id = await tx.insert(
                    _INSERT_FROM_DRAFT, (callback_secret, now, now, now + pickup, draft_id)
                )
                if await tx.execute(_MARK_RETRIED, (new_id, now, task_id)) != 1:
                    # Retried by someone else meanwhile: undo this copy.
                    raise _Undo
                row = await tx.fetchone(_GET, (new_id,))
        except _Undo:
            return Refusal.ALREADY
        assert row is not None
        return Task.from_row(row)

    @staticmethod
    async def _over_limits(tx: Session, user_id: int, limits: Limits, now: float) -> Refusal | None:
        if limits.active is not None:
            row = await tx.fetchone(_ACTIVE, (user_id,))
            if row is not None and row[0] >= limits.active:
                return Refusal.ACTIVE_LIMIT
        if limits.daily is not None:
            row = await tx.fetchone(_SINCE, (user_id, now - DAY))
            if row is not None and row[0] >= limits.daily:
                return Refusal.DAILY_LIMIT
        return None

    async def stats(self, days: int = 7, failures: int = 5) -> Stats:
        """Tasks by state, by model and by day (UTC, last `days`), and the latest failures."""
        since = time.time() - days * DAY
        by_state = await self._db.fetchall(_BY_STATE)
        by_model = await self._db.fetchall(_BY_MODEL_IN[self._db.dialect])
        by_day = await self._db.fetchall(_BY_DAY_IN[self._db.dialect], (since,))
        failed = await self._db.fetchall(_FAILURES, (failures,))
        return Stats(
            by_state={row[0]: row[1] for row in by_state},
            by_model={str(row[0]): row[1] for row in by_model},
            by_day={row[0]: row[1] for row in by_day},
            recent_failures=[Task.from_row(row) for row in failed],
        )

    async def mark_create_started(self, task_id: int, holder: str | None = None) -> bool:
        """Record that the paid call is about to be made: from now on its outcome is unsure.

        With `holder`, only while that claim still holds the task's lease; False otherwise.
        """
        now = time.time()
        if holder is None:
            return await self._db.execute(_CREATE_STARTED, (now, now, task_id)) == 1
        changed = await self._db.execute(_CREATE_STARTED + _HELD, (now, now, task_id, holder))
        return changed == 1

    async def mark_sending(self, task_id: int, holder: str | None = None) -> bool:
        """Record that the video is about to go to Telegram: from now on it may have arrived.

        With `holder`, only while that claim still holds the task's lease; False otherwise.
        """
        now = time.time()
        if holder is None:
            return await self._db.execute(_SENDING, (now, now, task_id)) == 1
        return await self._db.execute(_SENDING + _HELD, (now, now, task_id, holder)) == 1

    async def unmark_sending(self, task_id: int, holder: str) -> bool:
        """Telegram refused the video outright: it did not arrive, and may be sent again."""
        params = (time.time(), task_id, holder)
        return await self._db.execute(_UNSENT + _HELD, params) == 1

    async def wait_for_chat(self, task_id: int, holder: str) -> bool:
        """Leave `holder`'s undelivered task until its chat writes to the bot again; if the
        chat no longer blocks the bot (it wrote meanwhile), make the task due now instead.
        False if the task is no longer `holder`'s."""
        now = time.time()
        if await self._db.execute(_WAIT_FOR_CHAT, (now, task_id, holder)) == 1:
            return True
        return await self._db.execute(_DUE_AGAIN, (now, now, task_id, holder)) == 1

    async def deliver_in_chat(self, chat_id: int) -> int:
        """Make the chat's waiting deliveries due now (it writes again); how many."""
        now = time.time()
        return await self._db.execute(_DELIVER_IN_CHAT, (now, now, now, chat_id))

    async def take(self, task: Task, holder: str, until: float) -> Task | None:
        """Lease a task being submitted or delivered whose lease ran out, as `holder` until
        `until`; None if another took it first (or it moved on)."""
        if task.next_poll_at is None:
            return None
        params = (holder, until, time.time(), task.id, task.next_poll_at)
        return await self._update_one(_TAKE, params, task.id)

    async def renew(self, task_id: int, holder: str, until: float) -> bool:
        """Extend `holder`'s lease to `until`; False if the lease is no longer theirs."""
        return await self._db.execute(_RENEW, (until, task_id, holder)) == 1

    async def heard(self, task_id: int, now: float) -> None:
        """Record that a callback named the task (the first one counts)."""
        await self._db.execute(_HEARD, (now, task_id))

    async def resume_deliveries(self, now: float) -> int:
        """Make deliveries given up on for now due (a process starts); how many. Those
        waiting for a chat that blocks the bot, and those someone holds, are left."""
        return await self._db.execute(_RESUME_DELIVERIES, (now,))

    async def expire_leases(self, now: float) -> int:
        """End every lease now (one process on SQLite: whoever held them is gone)."""
        return await self._db.execute(_EXPIRE, (now, now))

    async def revive(self, task_id: int, result_url: str) -> Task | None:
        """A task failed for taking too long that succeeded after all: deliver it."""
        now = time.time()
        return await self._update_one(_REVIVE, (result_url, now, now, now, task_id), task_id)

    async def give_up_create(self, task_id: int, now: float) -> Task | None:
        """Fail a task whose create's outcome is unknown, unless it was adopted meanwhile."""
        return await self._update_one(_GIVE_UP_CREATE, (now, now, task_id), task_id)

    async def adopt(self, task_id: int, provider_task_id: str, now: float) -> Task | None:
        """Track a task whose create's answer was lost once the provider names it."""
        params = (provider_task_id, now, now, now, task_id)
        return await self._update_one(_ADOPT, params, task_id)

    async def _update_one(self, sql: str, params: tuple[Any, ...], task_id: int) -> Task | None:
        """Run an UPDATE of one task and return the task as it is now; None if nothing changed."""
        async with self._db.transaction() as tx:
            if await tx.execute(sql, params) != 1:
                return None
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
        params = (state.value, *fields.values(), time.time(), task_id, *earlier)
        return await self._update_one(sql, params, task_id)

    async def for_user(self, user_id: int, limit: int = 10, offset: int = 0) -> list[Task]:
        """The user's tasks, newest first."""
        rows = await self._db.fetchall(_FOR_USER, (user_id, limit, offset))
        return [Task.from_row(row) for row in rows]

    async def count_for_user(self, user_id: int) -> int:
        """How many tasks the user has ever made."""
        row = await self._db.fetchone(_COUNT_FOR_USER, (user_id,))
        return int(row[0]) if row else 0

    async def count_newer(self, user_id: int, task_id: int) -> int:
        """How many of the user's tasks are newer than `task_id` (its place in /status)."""
        row = await self._db.fetchone(_COUNT_NEWER, (user_id, task_id))
        return int(row[0]) if row else 0

    async def in_states(self, *states: TaskState) -> list[Task]:
        """Every task in one of `states`, oldest first."""
        sql = _IN_STATES.format(", ".join("?" * len(states)))
        rows = await self._db.fetchall(sql, [s.value for s in states])
        return [Task.from_row(row) for row in rows]

    async def due(self, now: float, limit: int, *, leased: bool = True) -> list[Task]:
        """Tasks whose next check is due (or whose lease ran out), most overdue first;
        without `leased`, only tasks that are not being submitted or delivered."""
        sql = _DUE.format("" if leased else f" AND NOT {_LEASED}")
        rows = await self._db.fetchall(sql, (now, limit))
        return [Task.from_row(row) for row in rows]

    async def next_due_after(self, moment: float) -> float | None:
        """When the earliest check scheduled after `moment` is due."""
        row = await self._db.fetchone(_NEXT_DUE, (moment,))
        return float(row[0]) if row and row[0] is not None else None

    async def schedule(self, task_id: int, at: float) -> bool:
        """Move a scheduled task's next check to `at` (a wake-up); False if it is not tracked."""
        return await self._db.execute(_SCHEDULE, (at, task_id)) == 1

    async def schedule_many(self, moments: list[tuple[int, float]]) -> None:
        """Move many tracked tasks' next checks at once: (task id, when) pairs."""
        if not moments:
            return
        async with self._db.transaction() as tx:
            for task_id, at in moments:
                await tx.execute(_SCHEDULE, (at, task_id))

    async def retry_delivery(self, task_id: int, at: float) -> None:
        """Try a delivery Telegram refused again at `at`."""
        await self._db.execute(_RETRY_DELIVERY, (at, task_id))

    async def unschedule(self, task_id: int) -> None:
        """Stop checking a task."""
        await self._db.execute(_UNSCHEDULE, (task_id,))

    async def tracked(self, backend: str) -> list[Task]:
        """The backend's tasks being followed at the provider, oldest first."""
        rows = await self._db.fetchall(_TRACKED_IN[self._db.dialect], (backend,))
        return [Task.from_row(row) for row in rows]

    async def hasten(self, backend: str, now: float, least: float, share: float) -> int:
        """Bring the backend's generating tasks' next checks to within `share` of their age."""
        sql = _HASTEN_IN[self._db.dialect]
        return await self._db.execute(sql, (now, least, share, backend))

    async def count_poll(
        self, task_id: int, next_poll_at: float, seen: float | None = None
    ) -> bool:
        """Record one provider check and when the next is due; False if it is not tracked.

        With `seen` (the due moment the caller read), only if it still holds: of replicas that
        saw one look due, one makes it.
        """
        if seen is None:
            return await self._db.execute(_COUNT_POLL, (next_poll_at, task_id)) == 1
        return await self._db.execute(_CLAIM_POLL, (next_poll_at, task_id, seen)) == 1
