"""An album's draft is shown by one process, once its photos have stopped arriving."""

from __future__ import annotations

import asyncio

from storage import DraftRepository, GenerationOptions
from tests.storage.conftest import Store

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5, sound=False)


async def photo(drafts: DraftRepository, message_id: int, show_at: float) -> int:
    draft, _ = await drafts.add_to_album(
        user_id=7,
        chat_id=7,
        media_group_id="g1",
        message_id=message_id,
        file_id=f"file-{message_id}",
        caption="a cat" if message_id == 1 else None,
        options=OPTIONS,
        lang="en",
        show_at=show_at,
    )
    return draft.id


async def test_each_photo_moves_the_moment_and_one_process_takes_it(store: Store) -> None:
    async with store.open() as a, store.open() as b:
        one, two = DraftRepository(a), DraftRepository(b)
        first = await photo(one, 1, 100.0)
        assert await photo(two, 2, 105.0) == first  # the second photo, at another replica
        assert not await one.take_showing(first, 102.0)  # moved on by the second photo
        assert await one.overdue(104.0) == []
        assert await two.overdue(106.0) == [first]
        taken = await asyncio.gather(one.take_showing(first, 106.0), two.take_showing(first, 106.0))
        assert sorted(taken) == [False, True]
        assert await one.overdue(1000.0) == []
        shown = await two.get(first)
        assert shown is not None and shown.image_count == 2 and shown.show_at is None
