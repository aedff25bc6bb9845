"""Telegram updates taken once across processes, and the lock one process polls under."""

from __future__ import annotations

import asyncio
import time

import pytest

from storage import Database
from storage.updates import Answer, Turn, UpdateRepository
from tests.storage.conftest import Store


async def test_an_update_is_taken_once_and_done_once(db: Database) -> None:
    updates = UpdateRepository(db)
    later = time.time() + 30
    assert await updates.take(7, "a/1", later) is Turn.MINE
    assert await updates.take(7, "b/1", later) is Turn.BUSY
    await updates.done(7, "a/1")
    assert await updates.take(7, "b/1", later) is Turn.DONE
    assert await updates.take(7, "a/1", later) is Turn.DONE


async def test_an_update_whose_holder_died_is_taken_over(db: Database) -> None:
    updates = UpdateRepository(db)
    assert await updates.take(8, "dead/1", time.time() - 1) is Turn.MINE
    assert await updates.take(8, "b/1", time.time() + 30) is Turn.TAKEN_OVER
    await updates.done(8, "dead/1")  # it woke up late: its record does not count
    assert await updates.take(8, "c/1", time.time() + 30) is Turn.BUSY
    await updates.done(8, "b/1")
    assert await updates.take(8, "c/1", time.time() + 30) is Turn.DONE


async def test_two_processes_taking_one_update_at_once_one_gets_it(store: Store) -> None:
    async with store.open() as one, store.open() as two:
        for update_id in range(1, 11):
            later = time.time() + 30
            turns = await asyncio.gather(
                UpdateRepository(one).take(update_id, "a/1", later),
                UpdateRepository(two).take(update_id, "b/1", later),
            )
            assert sorted(t.value for t in turns) == ["busy", "mine"], turns


async def test_records_of_handled_updates_are_forgotten_after_a_day(db: Database) -> None:
    updates = UpdateRepository(db)
    await updates.take(9, "a/1", time.time() + 30)
    await updates.done(9, "a/1")
    await updates.take(10, "a/1", time.time() + 30)  # not done: kept
    assert await updates.forget(time.time() + 2 * 24 * 3600) == 1
    assert await updates.take(10, "b/1", time.time() + 30) is Turn.BUSY


async def test_what_handling_sent_is_kept_with_the_update_and_forgotten_with_it(
    db: Database,
) -> None:
    updates = UpdateRepository(db)
    await updates.take(21, "a/1", time.time() + 30)
    await updates.add_answer(21, Answer(0, "sendMessage 5", '{"message_id": 3}'))
    await updates.add_answer(21, Answer(1, "sendPhoto 5", '{"message_id": 4}'))
    await updates.add_answer(21, Answer(1, "sendPhoto 5", '{"message_id": 9}'))  # kept: first
    await updates.take(22, "a/1", time.time() + 30)
    await updates.add_answer(22, Answer(0, "sendMessage 6", "{}"))
    assert await updates.answers(21) == [
        Answer(0, "sendMessage 5", '{"message_id": 3}'),
        Answer(1, "sendPhoto 5", '{"message_id": 4}'),
    ]
    await updates.done(21, "a/1")
    assert await updates.forget(time.time() + 2 * 24 * 3600) == 1
    assert await updates.answers(21) == []
    assert len(await updates.answers(22)) == 1  # not handled yet: kept


async def test_one_process_holds_the_polling_lock_until_it_dies(store: Store) -> None:
    if store.kind != "postgres":
        pytest.skip("one process uses an SQLite file: it always holds every lock")
    async with store.open() as one, store.open() as two:
        held = await one.try_hold("poll")
        assert held is not None and await held.alive()
        assert await two.try_hold("poll") is None
        await held.release()
        again = await two.try_hold("poll")
        assert again is not None
        # The holder's connection dies (its process was killed): the lock is free at once.
        await one.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
        )
        assert not await again.alive()
        taken = await one.try_hold("poll")
        assert taken is not None and await taken.alive()
        await taken.release()
        await again.release()


async def test_an_update_whose_holder_died_is_found_with_its_body(db: Database) -> None:
    updates = UpdateRepository(db)
    body = '{"update_id": 11, "message": {"message_id": 1}}'
    assert await updates.take(11, "dead/1", time.time() - 1, body) is Turn.MINE
    assert await updates.take(12, "alive/1", time.time() + 30, "{}") is Turn.MINE
    await updates.take(13, "done/1", time.time() - 1, "{}")
    await updates.done(13, "done/1")
    assert await updates.abandoned(time.time()) == [(11, body)]
