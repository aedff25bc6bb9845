"""Backends whose callbacks stopped arriving: known to every process on the database."""

from __future__ import annotations

from storage.backends import BackendNotes
from tests.storage.conftest import Store


async def test_callbacks_lost_at_one_process_are_seen_at_another_until_heard(
    store: Store,
) -> None:
    async with store.open() as one, store.open() as two:
        here, there = BackendNotes(one), BackendNotes(two)
        assert await there.without_callbacks() == set()
        await here.callbacks_lost("kie", 100.0)
        await here.callbacks_lost("kie", 200.0)  # again: still one note
        await here.callbacks_lost("tuzi", 150.0)
        assert await there.without_callbacks() == {"kie", "tuzi"}
        await there.callbacks_heard("kie")
        assert await here.without_callbacks() == {"tuzi"}
        await there.callbacks_heard("kling")  # never lost: nothing to clear
        assert await here.without_callbacks() == {"tuzi"}
