"""What is PostgreSQL's own: opening by URL, migrations under a lock, types that fit."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from storage import (
    Database,
    Dialect,
    DraftRepository,
    GenerationOptions,
    MissingDriverError,
    Task,
    TaskRepository,
    TaskState,
    open_database,
)
from storage.migrations import POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video")
# Telegram ids past 32 bits: a user id of today and a supergroup's chat id.
BIG_USER = 7_123_456_789
SUPERGROUP = -1_001_234_567_890
_COLUMNS = """
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'public'
"""


def test_both_databases_have_the_same_numbered_migrations() -> None:
    assert len(POSTGRES_MIGRATIONS) == len(SQLITE_MIGRATIONS)


async def test_open_database_picks_by_url(postgres_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    async with open_database(postgres_url, path) as db:
        assert db.dialect is Dialect.POSTGRES
        assert await db.schema_version() == len(POSTGRES_MIGRATIONS)
    assert not path.exists()
    async with open_database(None, path) as db:
        assert db.dialect is Dialect.SQLITE
    assert path.exists()
    with pytest.raises(ValueError, match="postgresql://"):
        async with open_database("mysql://localhost/bot", path):
            pass


async def test_without_asyncpg_the_url_is_refused_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)  # import asyncpg now fails
    monkeypatch.delitem(sys.modules, "storage.postgres", raising=False)
    with pytest.raises(MissingDriverError, match=r'pip install "\.\[postgres\]"'):
        async with open_database("postgresql://localhost/bot", tmp_path / "x.sqlite3"):
            pass


async def test_replicas_starting_together_migrate_once(postgres_url: str) -> None:
    async def open_and_read() -> int:
        async with Database.connect(postgres_url, pool_size=2) as db:
            return await db.schema_version()

    versions = await asyncio.gather(*(open_and_read() for _ in range(4)))
    assert versions == [len(POSTGRES_MIGRATIONS)] * 4
    async with Database.connect(postgres_url) as db:
        rows = await db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [row[0] for row in rows] == list(range(1, len(POSTGRES_MIGRATIONS) + 1))


async def test_columns_have_types_that_fit(postgres_url: str) -> None:
    async with Database.connect(postgres_url) as db:
        columns = {(r[0], r[1]): r[2] for r in await db.fetchall(_COLUMNS)}
    assert "real" not in columns.values()  # float4: steps of 128 s at today's epoch
    for table, column in [
        ("drafts", "id"),
        ("drafts", "user_id"),
        ("drafts", "chat_id"),
        ("drafts", "message_id"),
        ("tasks", "id"),
        ("tasks", "user_id"),
        ("tasks", "chat_id"),
        ("tasks", "source_message_id"),
        ("tasks", "status_message_id"),
        ("tasks", "retried_as"),
        ("user_settings", "user_id"),
        ("chats", "chat_id"),
    ]:
        assert columns[table, column] == "bigint", (table, column)
    for column in ("created_at", "next_poll_at", "create_started_at", "sending_at"):
        assert columns["tasks", column] == "double precision", column
    assert columns["tasks", "options"] == "jsonb"


async def test_big_ids_and_timestamps_come_back_exactly(postgres_url: str) -> None:
    async with Database.connect(postgres_url) as db:
        draft = await DraftRepository(db).create(
            user_id=BIG_USER,
            chat_id=SUPERGROUP,
            source_message_id=2**40,
            image_file_id="f",
            prompt="p",
            options=OPTIONS,
            lang="en",
        )
        tasks = TaskRepository(db)
        task = await tasks.claim_draft(draft.id, "s", BIG_USER)
        assert isinstance(task, Task)
        moment = time.time()
        queued = await tasks.advance(task.id, TaskState.QUEUED, next_poll_at=moment)
        assert queued is not None
        assert [t.id for t in await tasks.for_user(BIG_USER)] == [task.id]
    assert (queued.user_id, queued.chat_id, queued.source_message_id) == (
        BIG_USER,
        SUPERGROUP,
        2**40,
    )
    assert queued.next_poll_at == moment  # to the last bit, not to the nearest 128 s
