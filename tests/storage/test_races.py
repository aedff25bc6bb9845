"""The three races issue 14 names, run on two connections at once (SQLite) or two pools
(PostgreSQL) to one database, as two processes or replicas would: each fails if its guard goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

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
from tests.storage.conftest import Store

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5, sound=False)
# Rounds per test: one round at once may happen to run in turn; ten never all do.
ROUNDS = 10


@pytest.fixture
async def pair(store: Store) -> AsyncIterator[tuple[Database, Database]]:
    """Two separate connections (or pools) to the test's one database."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(store.open())
        second = await stack.enter_async_context(store.open())
        yield first, second


async def open_draft(db: Database, user: int) -> int:
    draft = await DraftRepository(db).create(
        user_id=user,
        chat_id=user,
        source_message_id=11,
        image_file_id="file-1",
        prompt="a cat blinks",
        options=OPTIONS,
        lang="en",
    )
    return draft.id


async def test_claims_at_once_never_pass_the_active_limit(pair: tuple[Database, Database]) -> None:
    """(a) Two drafts of one user claimed at once with room for one more task make one task."""
    one, two = pair
    for user in range(1, ROUNDS + 1):
        drafts = [await open_draft(one, user) for _ in range(2)]
        results = await asyncio.gather(
            TaskRepository(one).claim_draft(drafts[0], "s0", user, Limits(active=1)),
            TaskRepository(two).claim_draft(drafts[1], "s1", user, Limits(active=1)),
        )
        assert sorted(map(type, results), key=str) == sorted([Refusal, Task], key=str), results
        assert Refusal.ACTIVE_LIMIT in results
        assert len(await TaskRepository(one).for_user(user)) == 1


async def test_claims_at_once_never_pass_the_daily_limit(pair: tuple[Database, Database]) -> None:
    """(a) With one of two daily videos used (and finished), two claims at once make one task."""
    one, two = pair
    tasks = TaskRepository(one)
    for user in range(1, ROUNDS + 1):
        earlier = await tasks.claim_draft(await open_draft(one, user), "s", user)
        assert isinstance(earlier, Task)
        assert await tasks.advance(earlier.id, TaskState.FAILED, error="x")
        drafts = [await open_draft(one, user) for _ in range(2)]
        limits = Limits(daily=2)
        results = await asyncio.gather(
            TaskRepository(one).claim_draft(drafts[0], "s0", user, limits),
            TaskRepository(two).claim_draft(drafts[1], "s1", user, limits),
        )
        assert Refusal.DAILY_LIMIT in results and any(isinstance(r, Task) for r in results)
        assert await tasks.count_for_user(user) == 2


async def test_two_retries_of_one_task_at_once_make_one_task(
    pair: tuple[Database, Database],
) -> None:
    """(b) Retry tapped twice at once on one failed task (two replicas): one new task."""
    one, two = pair
    tasks = TaskRepository(one)
    for user in range(1, ROUNDS + 1):
        failed = await tasks.claim_draft(await open_draft(one, user), "s", user)
        assert isinstance(failed, Task)
        assert await tasks.advance(failed.id, TaskState.FAILED, error="uncertain")
        results = await asyncio.gather(
            TaskRepository(one).retry(failed.id, "r0", 99, Limits()),
            TaskRepository(two).retry(failed.id, "r1", 99, Limits()),
        )
        made = [r for r in results if isinstance(r, Task)]
        assert len(made) == 1 and Refusal.ALREADY in results, results
        assert await tasks.count_for_user(user) == 2
        old = await tasks.get(failed.id)
        assert old is not None and old.retried_as == made[0].id


async def test_two_photos_of_one_album_at_once_make_one_draft(
    pair: tuple[Database, Database],
) -> None:
    """(c) Two photos of one album handled at once by two replicas: one draft with both."""
    one, two = pair

    async def add(db: Database, album: str, message_id: int) -> tuple[int, bool]:
        draft, created = await DraftRepository(db).add_to_album(
            user_id=7,
            chat_id=7,
            media_group_id=album,
            message_id=message_id,
            file_id=f"f{message_id}",
            caption="day to night" if message_id == 1 else None,
            options=OPTIONS,
            lang="en",
        )
        return draft.id, created

    for round_ in range(ROUNDS):
        album = f"album-{round_}"
        (first, made_first), (second, made_second) = await asyncio.gather(
            add(one, album, 1), add(two, album, 2)
        )
        assert first == second and sorted([made_first, made_second]) == [False, True]
        draft = await DraftRepository(one).get(first)
        assert draft is not None
        assert (draft.source_message_id, draft.image_file_id) == (1, "f1")
        assert [(i.message_id, i.file_id) for i in draft.extra_images] == [(2, "f2")]
        assert draft.prompt == "day to night"


async def test_captionless_photos_at_once_leave_one_draft_waiting(
    pair: tuple[Database, Database],
) -> None:
    """Two photos without a caption from one user at once: only the newer waits for a prompt."""
    one, two = pair
    for user in range(1, ROUNDS + 1):
        made = await asyncio.gather(
            *(
                DraftRepository(db).create(
                    user_id=user,
                    chat_id=user,
                    source_message_id=n,
                    image_file_id=f"file-{n}",
                    prompt=None,
                    options=OPTIONS,
                    lang="en",
                )
                for n, db in enumerate((one, two, one, two))
            )
        )
        states = [await DraftRepository(one).get(draft.id) for draft in made]
        waiting = [d for d in states if d is not None and d.state is DraftState.AWAITING_PROMPT]
        assert len(waiting) == 1, states


async def test_two_taps_of_again_at_once_make_one_draft(pair: tuple[Database, Database]) -> None:
    """A double tap of "Again" (or "New prompt") handled on two connections at once makes one
    draft; the other tap finds it."""
    one, two = pair
    for user in range(1, ROUNDS + 1):
        task = await TaskRepository(one).claim_draft(await open_draft(one, user), "s", user)
        assert isinstance(task, Task)
        for keep in (True, False):
            results = await asyncio.gather(
                DraftRepository(one).from_task(task.id, keep_prompt=keep, lang="en"),
                DraftRepository(two).from_task(task.id, keep_prompt=keep, lang="en"),
            )
            made = [r for r in results if r is not None]
            assert sorted(new for _, new in made) == [False, True], results
            assert made[0][0].id == made[1][0].id
            state = DraftState.OPEN if keep else DraftState.AWAITING_PROMPT
            assert made[0][0].state is state
