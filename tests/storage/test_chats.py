"""Chats seen by several replicas: blocked and unblocked, and edits spaced across processes."""

from __future__ import annotations

import asyncio

from storage import ChatRepository
from tests.storage.conftest import Store


async def test_a_chat_unblocked_by_one_replica_is_unblocked_for_all(store: Store) -> None:
    async with store.open() as a, store.open() as b:
        one, two = ChatRepository(a, shared=True), ChatRepository(b, shared=True)
        await one.block(42)
        assert await two.is_blocked(42)
        assert await two.unblock(42)
        # The replica that saw the block learns of the unblock: it delivers to the chat again.
        assert not await one.is_blocked(42)


async def test_one_progress_edit_per_interval_whichever_replica_asks(store: Store) -> None:
    async with store.open() as a, store.open() as b:
        replicas = [ChatRepository(a, shared=True), ChatRepository(b, shared=True)]
        allowed = await asyncio.gather(
            *(chats.take_edit(7, 1000.0, 10.0) for chats in replicas for _ in range(5))
        )
        assert sum(allowed) == 1
        assert not await replicas[1].take_edit(7, 1009.0, 10.0)
        assert await replicas[1].take_edit(7, 1010.0, 10.0)
        await replicas[0].edited(7, 1015.0)  # a status change: the next progress waits again
        assert not await replicas[1].take_edit(7, 1020.0, 10.0)
