"""Leases on tasks being submitted or delivered, and claimed looks, from two replicas at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from storage import Database, DraftRepository, GenerationOptions, Task, TaskRepository, TaskState
from storage.chats import ChatRepository
from tests.storage.conftest import Store

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5, sound=False)
ROUNDS = 10


@pytest.fixture
async def pair(store: Store) -> AsyncIterator[tuple[Database, Database]]:
    """Two replicas' connections (or pools) to one database."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(store.open())
        second = await stack.enter_async_context(store.open())
        yield first, second


async def new_task(db: Database, user: int = 7) -> Task:
    drafts = DraftRepository(db)
    draft = await drafts.create(
        user_id=user,
        chat_id=user,
        source_message_id=11,
        image_file_id="file-1",
        prompt="a cat blinks",
        options=OPTIONS,
        lang="en",
    )
    task = await TaskRepository(db).claim_draft(draft.id, "secret", user)
    assert isinstance(task, Task)
    return task


async def test_a_lease_that_ran_out_is_taken_by_one_replica(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    one, two = TaskRepository(a), TaskRepository(b)
    for _ in range(ROUNDS):
        task = await new_task(a)
        later = time.time() + 60
        taken = await asyncio.gather(one.take(task, "a/1", later), two.take(task, "b/1", later))
        winners = [t for t in taken if t is not None]
        assert len(winners) == 1, taken
        holder = winners[0].lease_owner
        # Only the holder may renew it, or start the paid call under it.
        loser = "b/1" if holder == "a/1" else "a/1"
        assert not await one.renew(task.id, loser, later + 1)
        assert await one.renew(task.id, str(holder), later + 1)
        assert not await two.mark_create_started(task.id, loser)
        assert await two.mark_create_started(task.id, str(holder))


async def test_a_holder_that_stalled_past_its_lease_cannot_pay(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    one, two = TaskRepository(a), TaskRepository(b)
    task = await new_task(a)
    mine = await one.take(task, "a/1", time.time() - 1)  # already run out
    assert mine is not None
    theirs = await two.take(mine, "b/1", time.time() + 60)
    assert theirs is not None and theirs.lease_owner == "b/1"
    # The first holder wakes up: its renewal and its paid call are refused.
    assert not await one.renew(task.id, "a/1", time.time() + 60)
    assert not await one.mark_create_started(task.id, "a/1")
    # A copy read before the takeover cannot take it back either.
    assert await one.take(mine, "a/2", time.time() + 60) is None


async def test_a_delivery_taken_over_cannot_be_uploaded_by_its_old_holder(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    one, two = TaskRepository(a), TaskRepository(b)
    task = await new_task(a)
    for state in (TaskState.QUEUED, TaskState.SUCCEEDED):
        assert await one.advance(task.id, state, result_url="https://v/a.mp4")
    claimed = await one.advance(
        task.id, TaskState.DELIVERING, next_poll_at=time.time() - 1, lease_owner="a/1"
    )
    assert claimed is not None
    assert await two.take(claimed, "b/1", time.time() + 60) is not None
    assert not await one.mark_sending(task.id, "a/1")
    assert await two.mark_sending(task.id, "b/1")


async def test_one_look_is_made_by_one_replica(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    one, two = TaskRepository(a), TaskRepository(b)
    for _ in range(ROUNDS):
        task = await new_task(a)
        queued = await one.advance(task.id, TaskState.QUEUED, next_poll_at=time.time())
        assert queued is not None and queued.next_poll_at is not None
        seen = queued.next_poll_at
        later = time.time() + 10
        looks = await asyncio.gather(
            one.count_poll(task.id, later, seen), two.count_poll(task.id, later + 1, seen)
        )
        assert sorted(looks) == [False, True]
        # Polls never move a lease: a task being submitted keeps its holder's time.
        leased = await new_task(a)
        assert not await one.count_poll(leased.id, later)
        assert not await one.schedule(leased.id, later)


async def test_a_sole_process_ends_the_leases_an_earlier_run_left(
    pair: tuple[Database, Database],
) -> None:
    one = TaskRepository(pair[0])
    a = pair[0]
    task = await new_task(a)
    held = await one.take(task, "a/1", time.time() + 600)
    assert held is not None
    now = time.time()
    assert await one.expire_leases(now) == 1
    due = await one.due(now, 10)
    assert [t.id for t in due] == [task.id]
    assert await one.due(now, 10, leased=False) == []


async def test_a_callback_heard_by_one_replica_is_known_to_all(
    pair: tuple[Database, Database],
) -> None:
    a, b = pair
    one, two = TaskRepository(a), TaskRepository(b)
    task = await new_task(a)
    await one.heard(task.id, 1000.0)
    await one.heard(task.id, 2000.0)  # the first one counts
    seen = await two.get(task.id)
    assert seen is not None and seen.callback_at == 1000.0


async def test_a_delivery_turned_away_waits_only_while_the_chat_still_blocks_the_bot(
    db: Database,
) -> None:
    tasks, chats = TaskRepository(db), ChatRepository(db, shared=True)
    task = await new_task(db)
    for state in (TaskState.QUEUED, TaskState.SUCCEEDED):
        assert await tasks.advance(task.id, state, result_url="https://v/a.mp4")
    later = time.time() + 60
    assert await tasks.advance(task.id, TaskState.DELIVERING, next_poll_at=later, lease_owner="a/1")
    # The chat wrote (and so no longer blocks the bot) before the turned-away delivery parked.
    assert await tasks.wait_for_chat(task.id, "a/1")
    due = await tasks.get(task.id)
    assert due is not None and due.lease_owner is None
    assert due.next_poll_at is not None and due.next_poll_at <= time.time()
    # Blocked: parked until the chat writes; a holder that lost the task changes nothing.
    assert await tasks.take(due, "a/2", later) is not None
    await chats.block(task.chat_id)
    assert not await tasks.wait_for_chat(task.id, "a/1")
    assert await tasks.wait_for_chat(task.id, "a/2")
    parked = await tasks.get(task.id)
    assert parked is not None and parked.next_poll_at is None and parked.lease_owner is None
    assert await chats.unblock(task.chat_id)
    assert await tasks.deliver_in_chat(task.chat_id) == 1


async def test_a_starting_replica_makes_only_deliveries_given_up_on_for_now_due(
    db: Database,
) -> None:
    tasks, chats = TaskRepository(db), ChatRepository(db, shared=True)

    async def delivering(user: int, **fields: object) -> Task:
        task = await new_task(db, user)
        for state in (TaskState.QUEUED, TaskState.SUCCEEDED):
            assert await tasks.advance(task.id, state, result_url="https://v/a.mp4")
        moved = await tasks.advance(task.id, TaskState.DELIVERING, **fields)
        assert moved is not None
        return moved

    later = time.time() + 60
    given_up = await delivering(1, next_poll_at=None)  # refused for a day: unscheduled
    held = await delivering(2, next_poll_at=later, lease_owner="a/1")  # another's, at work
    parked = await delivering(3, next_poll_at=None)  # its chat blocks the bot
    await chats.block(3)
    now = time.time()
    assert await tasks.resume_deliveries(now) == 1
    after = {t.id: t for t in await tasks.in_states(TaskState.DELIVERING)}
    assert after[given_up.id].next_poll_at == pytest.approx(now)
    assert after[held.id].next_poll_at == pytest.approx(later)
    assert after[held.id].lease_owner == "a/1"
    assert after[parked.id].next_poll_at is None
