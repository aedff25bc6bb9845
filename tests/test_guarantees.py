"""The races README's Guarantees guard against, run for real: each fails if its guard goes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from storage import (
    Database,
    DraftRepository,
    DraftState,
    GenerationOptions,
    Limits,
    Refusal,
    Task,
    TaskRepository,
    TaskState,
)
from tests.conftest import generate, until
from tests.postgres import postgres_server, postgres_url  # noqa: F401  (the fixtures, here)

Run = Callable[..., Any]

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5, sound=False)
USER = 7


@dataclass
class Store:
    """Repositories on one database, through one or several connections (or pools)."""

    dbs: Sequence[Database]

    def drafts(self, i: int = 0) -> DraftRepository:
        return DraftRepository(self.dbs[i % len(self.dbs)])

    def tasks(self, i: int = 0) -> TaskRepository:
        return TaskRepository(self.dbs[i % len(self.dbs)])

    async def open_draft(self, user: int = USER) -> int:
        draft = await self.drafts().create(
            user_id=user,
            chat_id=user,
            source_message_id=11,
            image_file_id="file-1",
            prompt="a cat blinks",
            options=OPTIONS,
            lang="en",
        )
        return draft.id

    async def failed_task(self, user: int = USER) -> int:
        task = await self.tasks().claim_draft(await self.open_draft(user), "s", user)
        assert isinstance(task, Task)
        assert await self.tasks().advance(task.id, TaskState.FAILED, error="uncertain")
        return task.id

    async def task(self, task_id: int) -> Task:
        task = await self.tasks().get(task_id)
        assert task is not None
        return task

    async def draft_state(self, draft_id: int) -> DraftState:
        draft = await self.drafts().get(draft_id)
        assert draft is not None
        return draft.state

    async def count_tasks(self, *states: TaskState) -> int:
        return len(await self.tasks().in_states(*(states or tuple(TaskState))))


# Claims run through one connection and through two to one SQLite file (a deploy overlapping
# the old instance), and through two pools to one PostgreSQL database (two replicas).
@pytest.fixture(
    params=[("sqlite", 1), ("sqlite", 2), ("postgres", 2)],
    ids=["one-connection", "two-connections", "postgres-two-pools"],
)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str | None, Path, int]:
    """Where the store is: a PostgreSQL URL or an SQLite file, and how many connections."""
    kind, count = request.param
    url = request.getfixturevalue("postgres_url") if kind == "postgres" else None
    return url, tmp_path / "bot.sqlite3", count


@pytest.fixture
async def store(place: tuple[str | None, Path, int]) -> AsyncIterator[Store]:
    url, path, count = place
    async with AsyncExitStack() as stack:
        dbs = [
            await stack.enter_async_context(Database.connect(url) if url else Database.open(path))
            for _ in range(count)
        ]
        yield Store(dbs)


def tasks_and_refusals(results: list[Task | Refusal]) -> tuple[list[Task], list[Refusal]]:
    tasks = [r for r in results if isinstance(r, Task)]
    return tasks, [r for r in results if isinstance(r, Refusal)]


# ---- one tap, one task: concurrent claims against the per-user limits ----------------------
# Four at once, spread over the connections: each connection then serves at least two, so a
# limit checked apart from the claim is passed on each of them whatever SQLite's lock order.


async def test_concurrent_claims_never_pass_the_active_limit(store: Store) -> None:
    """Four drafts of one user claimed at once with a limit of one make exactly one task."""
    drafts = [await store.open_draft() for _ in range(4)]
    stranger = await store.open_draft(user=8)
    limits = Limits(active=1)
    claims = [
        store.tasks(i).claim_draft(draft, f"s{i}", USER, limits) for i, draft in enumerate(drafts)
    ]
    claims.append(store.tasks(1).claim_draft(stranger, "s8", 8, limits))
    *mine, theirs = await asyncio.gather(*claims)
    made, refused = tasks_and_refusals(mine)
    assert len(made) == 1 and refused == [Refusal.ACTIVE_LIMIT] * 3
    assert isinstance(theirs, Task)  # the limit is per user
    assert await store.count_tasks() == 2
    # The refused drafts stay open: Generate works again once the running video is done.
    states = [await store.draft_state(draft) for draft in drafts]
    assert sorted(states) == sorted([DraftState.SUBMITTED] + [DraftState.OPEN] * 3)
    assert await store.tasks().advance(made[0].id, TaskState.FAILED, error="x")
    open_again = [d for d, s in zip(drafts, states, strict=True) if s is DraftState.OPEN]
    assert isinstance(await store.tasks().claim_draft(open_again[0], "s", USER, limits), Task)


async def test_concurrent_claims_never_pass_the_daily_limit(store: Store) -> None:
    """With one of two daily videos used, four claims at once make exactly one more task."""
    earlier = await store.tasks().claim_draft(await store.open_draft(), "s", USER)
    assert isinstance(earlier, Task)
    assert await store.tasks().advance(earlier.id, TaskState.FAILED, error="x")  # not active
    drafts = [await store.open_draft() for _ in range(4)]
    limits = Limits(active=5, daily=2)
    results = await asyncio.gather(
        *(store.tasks(i).claim_draft(d, f"s{i}", USER, limits) for i, d in enumerate(drafts))
    )
    made, refused = tasks_and_refusals(results)
    assert len(made) == 1 and refused == [Refusal.DAILY_LIMIT] * 3
    assert await store.count_tasks() == 2


async def test_concurrent_retries_and_claims_never_pass_the_active_limit(store: Store) -> None:
    """Retry on two failed tasks and Generate on two drafts, all at once, with a limit of one."""
    failed = [await store.failed_task() for _ in range(2)]
    drafts = [await store.open_draft() for _ in range(2)]
    limits = Limits(active=1)
    results = await asyncio.gather(
        store.tasks(0).retry(failed[0], "r0", 99, limits),
        store.tasks(1).retry(failed[1], "r1", 99, limits),
        store.tasks(2).claim_draft(drafts[0], "c0", USER, limits),
        store.tasks(3).claim_draft(drafts[1], "c1", USER, limits),
    )
    made, refused = tasks_and_refusals(list(results))
    assert len(made) == 1 and refused == [Refusal.ACTIVE_LIMIT] * 3
    assert await store.count_tasks(TaskState.SUBMITTING) == 1
    # A refused retry is not used up: the failed task can still be retried later.
    retried_as = [(await store.task(task_id)).retried_as for task_id in failed]
    by_retry = made[0].draft_id not in drafts
    assert [r for r in retried_as if r is not None] == ([made[0].id] if by_retry else [])


async def test_concurrent_claims_of_one_draft_make_one_task(store: Store) -> None:
    """Ten taps on one draft, through every connection at once, make exactly one task."""
    draft = await store.open_draft()
    results = await asyncio.gather(
        *(store.tasks(i).claim_draft(draft, f"s{i}", USER, Limits(active=5)) for i in range(10))
    )
    made, refused = tasks_and_refusals(results)
    assert len(made) == 1 and refused == [Refusal.ALREADY] * 9
    assert await store.count_tasks() == 1


# ---- exactly one video per task: deliveries racing for one task ----------------------------


async def test_two_deliveries_racing_for_one_task_send_one_video(harness: Run) -> None:
    """Two trackers that both find one task succeeded send one video: the claim decides."""
    # One tracker never checks a task twice at once; two processes on one database do, and a
    # broken guard upstream would too. Then only the delivery's own claim stands in the way.
    async with harness(poll_interval=60.0) as h:
        await generate(h)
        queued = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await h.kie.complete(queued.provider_task_id)
        remote = await h.services.providers["kie"].fetch(queued.provider_task_id)
        assert remote.video_url
        # What a poll or callback records on seeing the end; both checks hold this same copy.
        succeeded = await h.services.tasks.advance(
            queued.id, TaskState.SUCCEEDED, result_url=remote.video_url, finished_at=time.time()
        )
        assert succeeded is not None
        upload = h.telegram.hold("sendVideo")
        checks = [asyncio.create_task(h.services.tracker.check(succeeded)) for _ in range(2)]
        await upload.wait()
        # Either the other check gives way (claimed elsewhere) or it, too, reaches Telegram.
        await until(lambda: upload.waiting == 2 or any(c.done() for c in checks), timeout=5)
        upload.release()
        await asyncio.gather(*checks)
        assert upload.count == 1
        assert len(h.telegram.calls_of("sendVideo")) == 1
        final = await h.services.tasks.get(queued.id)
        assert final is not None and final.state is TaskState.DELIVERED
