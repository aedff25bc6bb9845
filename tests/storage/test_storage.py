"""The repositories on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from storage import (
    AlbumImage,
    ChatRepository,
    Database,
    DraftRepository,
    DraftState,
    GenerationOptions,
    Limits,
    Refusal,
    Task,
    TaskRepository,
    TaskState,
    TimingRepository,
    UserSettingsRepository,
)
from storage.migrations import SQLITE_MIGRATIONS as MIGRATIONS
from storage.tasks import UNSTARTED

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5, sound=True)


async def new_draft(drafts: DraftRepository, prompt: str | None = "a cat blinks", user: int = 7):
    return await drafts.create(
        user_id=user,
        chat_id=user,
        source_message_id=11,
        image_file_id="file-1",
        prompt=prompt,
        options=OPTIONS,
        lang="en",
    )


async def test_open_creates_folder_uses_wal_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "bot.sqlite3"
    async with Database.open(path) as db:
        row = await db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
        assert await db.schema_version() == len(MIGRATIONS)
    async with Database.open(path) as db:  # a second open migrates nothing and keeps data
        assert await db.schema_version() == len(MIGRATIONS)
    assert path.exists()


async def test_opening_one_file_at_once_migrates_it_once(tmp_path: Path) -> None:
    """Processes starting together on a new file: one applies each migration, none fails."""

    async def open_and_read(path: Path) -> int:
        async with Database.open(path) as db:
            return await db.schema_version()

    # Six at once, ten times: switching a new file to WAL failed "locked" in 4 of 60 such
    # rounds before the switch waited for its turn.
    for round_ in range(10):
        path = tmp_path / f"bot{round_}.sqlite3"
        versions = await asyncio.gather(*(open_and_read(path) for _ in range(6)))
        assert versions == [len(MIGRATIONS)] * 6


async def test_draft_round_trip_and_prompt_filling(db: Database) -> None:
    drafts = DraftRepository(db)
    draft = await new_draft(drafts, prompt=None)
    assert draft.state is DraftState.AWAITING_PROMPT
    assert draft.options == OPTIONS
    assert (await drafts.awaiting_prompt(7, 7)) == draft
    assert await drafts.fill_prompt(draft.id, "waves roll in")
    assert not await drafts.fill_prompt(draft.id, "again")
    opened = await drafts.get(draft.id)
    assert opened is not None and opened.state is DraftState.OPEN
    assert opened.prompt == "waves roll in"
    assert await drafts.awaiting_prompt(7, 7) is None


async def test_only_the_newest_captionless_photo_waits(db: Database) -> None:
    drafts = DraftRepository(db)
    first = await new_draft(drafts, prompt=None)
    second = await new_draft(drafts, prompt=None)
    waiting = await drafts.awaiting_prompt(7, 7)
    assert waiting is not None and waiting.id == second.id
    old = await drafts.get(first.id)
    assert old is not None and old.state is DraftState.CANCELLED


async def test_options_change_only_while_open(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    draft = await new_draft(drafts)
    ten = OPTIONS.model_copy(update={"duration": 10})
    assert await drafts.set_options(draft.id, ten)
    assert (await drafts.get(draft.id)).options.duration == 10  # type: ignore[union-attr]
    assert isinstance(await tasks.claim_draft(draft.id, "secret", 7), Task)
    assert not await drafts.set_options(draft.id, OPTIONS)
    assert not await drafts.cancel(draft.id)


async def test_claim_is_exactly_once_even_when_concurrent(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    draft = await new_draft(drafts)
    await drafts.set_message(draft.id, 99)
    results = await asyncio.gather(*(tasks.claim_draft(draft.id, f"s{i}", 7) for i in range(10)))
    claimed = [task for task in results if isinstance(task, Task)]
    assert results.count(Refusal.ALREADY) == 9
    assert len(claimed) == 1
    task = claimed[0]
    assert task.state is TaskState.SUBMITTING
    assert task.status_message_id == 99
    assert task.prompt == "a cat blinks" and task.options == OPTIONS
    # Due for the sweep a while after the claim, unless its submitter takes it first.
    assert task.next_poll_at == pytest.approx(task.created_at + UNSTARTED)
    assert task.lease_owner is None
    row = await db.fetchone("SELECT COUNT(*) FROM tasks")
    assert row is not None and row[0] == 1


async def test_states_only_move_forward(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    task = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    assert isinstance(task, Task)
    queued = await tasks.advance(task.id, TaskState.QUEUED, provider_task_id="p1")
    assert queued is not None and queued.provider_task_id == "p1"
    assert await tasks.advance(task.id, TaskState.RUNNING) is not None
    assert await tasks.advance(task.id, TaskState.QUEUED) is None
    assert await tasks.advance(task.id, TaskState.RUNNING) is None
    assert await tasks.advance(task.id, TaskState.SUCCEEDED, result_url="u") is not None
    assert await tasks.advance(task.id, TaskState.DELIVERING) is not None
    assert await tasks.advance(task.id, TaskState.DELIVERING) is None
    assert await tasks.advance(task.id, TaskState.DELIVERED) is not None
    assert await tasks.advance(task.id, TaskState.FAILED) is None
    final = await tasks.get(task.id)
    assert final is not None and final.state is TaskState.DELIVERED
    with pytest.raises(ValueError):
        await tasks.advance(task.id, TaskState.FAILED, bogus=1)


async def test_due_tasks_and_wakeups(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    now = time.time()
    ids = []
    for offset in (30.0, -5.0, 10.0):
        task = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
        assert isinstance(task, Task)
        await tasks.advance(task.id, TaskState.QUEUED, next_poll_at=now + offset)
        ids.append(task.id)
    due = await tasks.due(now, 10)
    assert [t.id for t in due] == [ids[1]]
    assert await tasks.next_due_after(now) == pytest.approx(now + 10.0)
    assert await tasks.schedule(ids[0], now - 1)
    assert {t.id for t in await tasks.due(now, 10)} == {ids[0], ids[1]}
    await tasks.count_poll(ids[1], now + 100)
    polled = await tasks.get(ids[1])
    assert polled is not None and polled.polls == 1 and polled.next_poll_at == now + 100
    await tasks.unschedule(ids[2])
    assert not await tasks.schedule(ids[2], now)


async def test_tasks_listed_newest_first_per_user(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    for user in (1, 2, 1):
        await tasks.claim_draft((await new_draft(drafts, user=user)).id, "s", user)
    mine = await tasks.for_user(1)
    assert [t.id for t in mine] == [3, 1]
    assert await tasks.count_for_user(1) == 2
    assert [t.id for t in await tasks.in_states(TaskState.SUBMITTING)] == [1, 2, 3]


async def test_user_settings_persist(db: Database) -> None:
    users = UserSettingsRepository(db)
    assert (await users.get(5)).options is None
    await users.save_options(5, OPTIONS)
    await users.save_language(5, "zh")
    saved = await users.get(5)
    assert saved.options == OPTIONS and saved.language == "zh"


async def test_failed_transaction_rolls_back(db: Database) -> None:
    drafts = DraftRepository(db)
    draft = await new_draft(drafts)
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("UPDATE drafts SET prompt = 'changed' WHERE id = ?", (draft.id,))
            raise RuntimeError("boom")
    again = await drafts.get(draft.id)
    assert again is not None and again.prompt == "a cat blinks"


async def test_album_photos_join_one_draft_in_message_order(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)

    async def add(message_id: int, caption: str | None = None):
        return await drafts.add_to_album(
            user_id=7,
            chat_id=7,
            media_group_id="g1",
            message_id=message_id,
            file_id=f"f{message_id}",
            caption=caption,
            options=OPTIONS,
            lang="en",
        )

    first, created = await add(12)
    assert created and first.state is DraftState.AWAITING_PROMPT
    _, created = await add(14)
    assert not created
    draft, _ = await add(11, "from day to night")  # handled late, sent first
    assert draft.source_message_id == 11 and draft.image_file_id == "f11"
    assert draft.extra_images == [
        AlbumImage(message_id=12, file_id="f12"),
        AlbumImage(message_id=14, file_id="f14"),
    ]
    assert draft.state is DraftState.OPEN and draft.prompt == "from day to night"
    for message_id in (15, 16):
        draft, _ = await add(message_id)
    assert draft.image_count == 4
    task = await tasks.claim_draft(draft.id, "s", 7)
    assert isinstance(task, Task) and [i.file_id for i in task.extra_images] == [
        "f12",
        "f14",
        "f15",
    ]


async def test_limits_are_checked_inside_the_claim(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    limits = Limits(active=2, daily=3)
    first = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7, limits)
    second = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7, limits)
    assert isinstance(first, Task) and isinstance(second, Task)
    third_draft = await new_draft(drafts)
    assert await tasks.claim_draft(third_draft.id, "s", 7, limits) is Refusal.ACTIVE_LIMIT
    assert (await drafts.get(third_draft.id)).state is DraftState.OPEN  # type: ignore[union-attr]
    await tasks.advance(first.id, TaskState.FAILED)
    third = await tasks.claim_draft(third_draft.id, "s", 7, limits)
    assert isinstance(third, Task)
    await tasks.advance(second.id, TaskState.FAILED)
    fourth = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7, limits)
    assert fourth is Refusal.DAILY_LIMIT
    other = await tasks.claim_draft((await new_draft(drafts, user=8)).id, "s", 8, limits)
    assert isinstance(other, Task)
    # At once, too: limits checked apart from the claim would let all three through.
    racing = [(await new_draft(drafts, user=9)).id for _ in range(3)]
    results = await asyncio.gather(
        *(tasks.claim_draft(draft_id, "s", 9, Limits(active=1)) for draft_id in racing)
    )
    assert sum(isinstance(r, Task) for r in results) == 1
    assert results.count(Refusal.ACTIVE_LIMIT) == 2


async def test_retry_copies_a_failed_task_once(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    task = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    assert isinstance(task, Task)
    assert await tasks.retry(task.id, "s2", 99, Limits()) is Refusal.ALREADY  # not failed
    await tasks.advance(task.id, TaskState.FAILED, error="uncertain")
    results = await asyncio.gather(*(tasks.retry(task.id, f"r{i}", 99, Limits()) for i in range(5)))
    retried = [r for r in results if isinstance(r, Task)]
    assert len(retried) == 1 and results.count(Refusal.ALREADY) == 4
    again = retried[0]
    assert again.id != task.id and again.state is TaskState.SUBMITTING
    assert (again.prompt, again.options, again.image_file_id) == (
        task.prompt,
        task.options,
        task.image_file_id,
    )
    assert again.status_message_id == 99 and again.callback_secret != task.callback_secret
    old = await tasks.get(task.id)
    assert old is not None and old.retried_as == again.id


async def test_create_started_and_revival_after_timeout(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    task = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    assert isinstance(task, Task)
    await tasks.mark_create_started(task.id)
    started = await tasks.get(task.id)
    assert started is not None and started.create_started_at is not None
    await tasks.advance(task.id, TaskState.FAILED, error="generation_failed")
    assert await tasks.revive(task.id, "https://v") is None  # only timeouts come back
    task2 = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    assert isinstance(task2, Task)
    await tasks.advance(task2.id, TaskState.FAILED, error="timeout")
    revived = await tasks.revive(task2.id, "https://v")
    assert revived is not None and revived.state is TaskState.SUCCEEDED
    assert revived.result_url == "https://v" and revived.error is None


async def test_chats_block_and_unblock(db: Database) -> None:
    chats = ChatRepository(db)
    assert not await chats.is_blocked(5)
    await chats.block(5)
    assert await chats.is_blocked(5)
    assert await chats.unblock(5)
    assert not await chats.unblock(5)
    assert not await chats.is_blocked(5)


async def test_stats_count_by_state_model_and_utc_day(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    first = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    second = await tasks.claim_draft((await new_draft(drafts)).id, "s", 7)
    assert isinstance(first, Task) and isinstance(second, Task)
    await tasks.advance(first.id, TaskState.FAILED, error="moderation", finished_at=time.time())
    stats = await tasks.stats()
    assert stats.by_state == {"failed": 1, "submitting": 1}
    assert stats.by_model == {OPTIONS.model: 2}
    assert stats.by_day == {time.strftime("%Y-%m-%d", time.gmtime(first.created_at)): 2}
    assert [t.id for t in stats.recent_failures] == [first.id]


async def test_tracked_tasks_and_hastening_per_backend(db: Database) -> None:
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    now = time.time()
    ids = []
    for model in (OPTIONS.model, "kling:kling-v2-6"):
        draft = await new_draft(drafts)
        await drafts.set_options(draft.id, OPTIONS.model_copy(update={"model": model}))
        task = await tasks.claim_draft(draft.id, "s", 7)
        assert isinstance(task, Task)
        await tasks.advance(
            task.id,
            TaskState.QUEUED,
            provider_task_id=f"p{task.id}",
            submitted_at=now - 100,
            next_poll_at=now + 1000,
        )
        ids.append(task.id)
    assert [t.id for t in await tasks.tracked("kie")] == [ids[0]]
    assert await tasks.hasten("kie", now, 5.0, 0.1) == 1
    kie, kling = await tasks.get(ids[0]), await tasks.get(ids[1])
    assert kie is not None and kie.next_poll_at == pytest.approx(now + 10)  # a tenth of 100 s
    assert kling is not None and kling.next_poll_at == now + 1000


async def test_run_times_keep_the_newest_per_kind(db: Database) -> None:
    timings = TimingRepository(db)
    for seconds in (10.0, 20.0, 30.0):
        kept = await timings.add("kie:a", seconds, 1000.0 + seconds, keep=2, since=0.0)
    await timings.add("kie:b", 5.0, 1000.0, keep=2, since=0.0)
    assert kept == [30.0, 20.0]
    assert await timings.recent(since=0.0, keep=5) == {"kie:a": [30.0, 20.0], "kie:b": [5.0]}
    assert await timings.recent(since=1025.0, keep=5) == {"kie:a": [30.0]}
