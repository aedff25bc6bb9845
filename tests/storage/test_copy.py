"""Copying an SQLite database into PostgreSQL: every row with its id, once, into an empty one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from storage import (
    ChatRepository,
    Database,
    DraftRepository,
    GenerationOptions,
    Limits,
    Task,
    TaskRepository,
    TaskState,
    TimingRepository,
    UserSettingsRepository,
)
from storage.copying import TargetNotEmpty, copy_database
from storage.migrations import SQLITE_MIGRATIONS
from storage.snapshot import SourceError, open_snapshot

ROOT = Path(__file__).parents[2]
ENTRY = "import sys; from bot.cli import main; sys.exit(main(sys.argv[1:]))"
BASE_ENV = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=10, sound=True)
ALBUM = GenerationOptions(model="kling:kling-v2-1", mode="pro", cfg_scale=0.25, shots=("a", "b"))
USER = 7
BIG_USER = 2**62 + 12345  # Telegram ids pass 2^32; 64 bits must survive
GROUP = -1001234567890
EXACT = 1_765_432_109.123456  # float8 keeps every digit; a float4 would move it by ~100 s
NO_LIMITS = Limits()
# Trust authentication ignores the password, so the tests can give one and look for it.
PASSWORD = "s3cret-db-password"

_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
_JSONB_COLUMNS = """
SELECT table_name, column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND data_type = 'jsonb'
"""


async def fill(db: Database) -> None:
    """Drafts (one an album), tasks in several states, settings, a blocked chat, run times."""
    drafts, tasks = DraftRepository(db), TaskRepository(db)
    draft = await drafts.create(
        user_id=USER,
        chat_id=USER,
        source_message_id=1,
        image_file_id="file-1",
        prompt="a cat blinks",
        options=OPTIONS,
        lang="en",
    )
    await drafts.create(
        user_id=USER,
        chat_id=USER,
        source_message_id=2,
        image_file_id="file-2",
        prompt=None,
        options=OPTIONS,
        lang="en",
    )
    for message_id in (12, 11, 13):  # out of order, as Telegram may deliver them
        album, _ = await drafts.add_to_album(
            user_id=BIG_USER,
            chat_id=GROUP,
            media_group_id="album-1",
            message_id=message_id,
            file_id=f"file-{message_id}",
            caption="day turns into night" if message_id == 11 else None,
            options=ALBUM,
            lang="ru",
        )
    assert len(album.extra_images) == 2
    queued = await claim(tasks, draft.id, USER)
    await tasks.advance(queued.id, TaskState.QUEUED, provider_task_id="kie-1", next_poll_at=EXACT)
    done = await claim(tasks, album.id, BIG_USER)
    await tasks.advance(
        done.id,
        TaskState.DELIVERED,
        provider_task_id="kling-2",
        result_url="https://example.com/v.mp4",
        submitted_at=EXACT + 1e-6,
        finished_at=EXACT + 60.5,
        delivered_at=EXACT + 61.000001,
    )
    third = await drafts.create(
        user_id=BIG_USER,
        chat_id=GROUP,
        source_message_id=20,
        image_file_id="file-20",
        prompt="a quiet street",
        options=OPTIONS,
        lang="ru",
    )
    failed = await claim(tasks, third.id, BIG_USER)
    await tasks.advance(failed.id, TaskState.FAILED, error="refused", error_detail="nsfw")
    assert isinstance(await tasks.retry(failed.id, "secret-4", None, NO_LIMITS), Task)
    settings = UserSettingsRepository(db)
    await settings.save_options(USER, ALBUM)
    await settings.save_language(BIG_USER, "ru")
    await ChatRepository(db).block(GROUP)
    timings = TimingRepository(db)
    for seconds in (30.0, 61.25, 90.125):  # keep=2 deletes the first: ids with a gap
        await timings.add("kie:kling-2.6", seconds, EXACT + seconds, keep=2, since=0)


async def claim(tasks: TaskRepository, draft_id: int, user_id: int) -> Task:
    task = await tasks.claim_draft(draft_id, f"secret-{draft_id}", user_id, NO_LIMITS)
    assert isinstance(task, Task)
    return task


async def filled(path: Path) -> Path:
    """An SQLite file filled through the repositories, closed as a stopped bot leaves it."""
    async with Database.open(path) as db:
        await fill(db)
    return path


async def every_row(db: Database, tables: list[str], json_columns: set[tuple[str, str]]) -> Any:
    """Every row of every table as dicts in key order, JSON documents parsed."""
    found = {}
    for table in tables:
        rows = [dict(row) for row in await db.fetchall(f'SELECT * FROM "{table}" ORDER BY 1')]
        for row in rows:
            for column in row:
                if (table, column) in json_columns and row[column] is not None:
                    row[column] = json.loads(row[column])
        found[table] = rows
    return found


async def tables_of(sqlite: Database) -> list[str]:
    return sorted(str(row[0]) for row in await sqlite.fetchall(_TABLES))


async def jsonb_columns(postgres: Database) -> set[tuple[str, str]]:
    return {(str(row[0]), str(row[1])) for row in await postgres.fetchall(_JSONB_COLUMNS)}


def digest(path: Path) -> dict[str, str]:
    """The folder's files and their contents' hashes: any write to the source shows."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in path.parent.iterdir()}


async def row_counts(db: Database, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        row = await db.fetchone(f'SELECT COUNT(*) FROM "{table}"')
        counts[table] = int(row[0]) if row else 0
    return counts


async def test_every_row_is_copied_with_its_id(tmp_path: Path, postgres_url: str) -> None:
    source = await filled(tmp_path / "db" / "bot.sqlite3")
    before = digest(source)
    async with open_snapshot(source) as snapshot, Database.connect(postgres_url) as target:
        copied = await copy_database(snapshot, target)
    assert digest(source) == before  # nothing written to the source
    async with Database.open(source) as sqlite, Database.connect(postgres_url) as postgres:
        tables, json_columns = await tables_of(sqlite), await jsonb_columns(postgres)
        assert {"drafts", "tasks", "user_settings", "chats", "run_times"} <= set(tables)
        assert json_columns >= {("drafts", "options"), ("tasks", "extra_images")}
        assert copied == await row_counts(sqlite, tables)
        assert list(copied).index("drafts") < list(copied).index("tasks")  # foreign key
        assert copied["run_times"] == 2 and copied["tasks"] == 4
        expected = await every_row(sqlite, tables, json_columns)
        assert await every_row(postgres, tables, json_columns) == expected
        # The repositories read the same models from both: JSON, 64-bit ids, exact times.
        old_drafts, new_drafts = DraftRepository(sqlite), DraftRepository(postgres)
        for draft_id in range(1, copied["drafts"] + 1):
            assert await new_drafts.get(draft_id) == await old_drafts.get(draft_id)
        old_tasks, new_tasks = TaskRepository(sqlite), TaskRepository(postgres)
        for task_id in range(1, copied["tasks"] + 1):
            assert await new_tasks.get(task_id) == await old_tasks.get(task_id)
        delivered = await TaskRepository(postgres).get(2)
        assert delivered is not None and delivered.user_id == BIG_USER
        assert delivered.chat_id == GROUP and delivered.finished_at == EXACT + 60.5
        assert [image.file_id for image in delivered.extra_images] == ["file-12", "file-13"]
        for user in (USER, BIG_USER):
            users = UserSettingsRepository(postgres), UserSettingsRepository(sqlite)
            assert await users[0].get(user) == await users[1].get(user)
        assert await ChatRepository(postgres).is_blocked(GROUP)
        timings = TimingRepository(postgres), TimingRepository(sqlite)
        assert await timings[0].recent(0, 10) == await timings[1].recent(0, 10)


async def test_new_rows_after_the_copy_get_ids_above_the_copied_ones(
    tmp_path: Path, postgres_url: str
) -> None:
    source = await filled(tmp_path / "bot.sqlite3")
    async with open_snapshot(source) as snapshot, Database.connect(postgres_url) as target:
        copied = await copy_database(snapshot, target)
    async with Database.connect(postgres_url) as postgres:
        drafts, tasks = DraftRepository(postgres), TaskRepository(postgres)
        draft = await drafts.create(
            user_id=USER,
            chat_id=USER,
            source_message_id=99,
            image_file_id="file-99",
            prompt="after the move",
            options=OPTIONS,
            lang="en",
        )
        assert draft.id == copied["drafts"] + 1
        assert (await claim(tasks, draft.id, USER)).id == copied["tasks"] + 1
        await TimingRepository(postgres).add("kie:kling-2.6", 5.0, EXACT, keep=10, since=0)
        row = await postgres.fetchone("SELECT MAX(id) FROM run_times")
        assert row is not None and row[0] == 4  # after the copied 2 and 3, not 1 again


async def test_a_target_with_rows_is_refused_and_left_as_it_was(
    tmp_path: Path, postgres_url: str
) -> None:
    source = await filled(tmp_path / "bot.sqlite3")
    async with Database.connect(postgres_url) as target:
        # One row that collides with nothing in the source: still no merge.
        await ChatRepository(target).block(555)
        async with Database.open(tmp_path / "empty.sqlite3") as empty:
            tables = await tables_of(empty)
        before = await every_row(target, tables, set())
        async with open_snapshot(source) as snapshot:
            with pytest.raises(TargetNotEmpty) as refused:
                await copy_database(snapshot, target)
        assert refused.value.rows == {"chats": 1}
        assert "already holds rows (chats: 1)" in str(refused.value)
        assert await every_row(target, tables, set()) == before


async def test_a_copy_that_fails_midway_leaves_the_target_empty(
    tmp_path: Path, postgres_url: str
) -> None:
    """One transaction: drafts go in before tasks, and a bad task undoes them too."""
    source = await filled(tmp_path / "bot.sqlite3")
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE tasks SET options = 'not json' WHERE id = 3")
    conn.close()
    async with open_snapshot(source) as snapshot, Database.connect(postgres_url) as target:
        with pytest.raises(Exception, match="json"):
            await copy_database(snapshot, target)
        tables = await tables_of(snapshot)
        assert set((await row_counts(target, tables)).values()) == {0}


async def test_a_source_open_in_another_process_is_refused(tmp_path: Path) -> None:
    source = await filled(tmp_path / "bot.sqlite3")
    async with Database.open(source):  # a bot still running on it
        with pytest.raises(SourceError, match="open in another process"):
            async with open_snapshot(source):
                pass
    async with open_snapshot(source) as snapshot:  # stopped: fine, and now the bot waits
        assert await snapshot.schema_version() == len(SQLITE_MIGRATIONS)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite3.connect(source, timeout=0).execute("SELECT COUNT(*) FROM tasks")


@pytest.mark.parametrize(("version", "problem"), [(-1, "start this version"), (1, "newer")])
async def test_a_source_at_another_schema_version_is_refused_untouched(
    tmp_path: Path, version: int, problem: str
) -> None:
    source = await filled(tmp_path / "bot.sqlite3")
    with sqlite3.connect(source) as conn:
        conn.execute(f"PRAGMA user_version = {len(SQLITE_MIGRATIONS) + version}")
    conn.close()
    before = digest(source)
    with pytest.raises(SourceError, match=problem):
        async with open_snapshot(source):
            pass
    assert digest(source) == before


async def test_a_missing_file_or_not_a_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        async with open_snapshot(tmp_path / "missing.sqlite3"):
            pass
    assert not (tmp_path / "missing.sqlite3").exists()
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(SourceError, match="not an SQLite database"):
        async with open_snapshot(junk):
            pass


async def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ENTRY,
        *args,
        env={**BASE_ENV, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    assert PASSWORD not in out.decode() + err.decode()
    assert "Traceback" not in err.decode(), err.decode()
    return process.returncode, out.decode(), err.decode()


async def test_the_command_copies_once_and_then_refuses(tmp_path: Path, postgres_url: str) -> None:
    """`kling-bot copy-db` with DATABASE_PATH and DATABASE_URL as defaults, end to end."""
    source = await filled(tmp_path / "data" / "kling-bot.sqlite3")
    url = postgres_url.replace("postgres@", f"postgres:{PASSWORD}@")
    env = {"DATABASE_PATH": str(source), "DATABASE_URL": url}

    code, out, err = await run_cli(["copy-db"], env, tmp_path)
    assert code == 0, err
    counts = dict(line.split() for line in out.splitlines())
    assert counts["drafts"] == "5" and counts["tasks"] == "4" and counts["run_times"] == "2"
    assert "postgres:***@127.0.0.1" in err and "copied 1" in err

    code, out, err = await run_cli(["copy-db", "--from", str(source), "--to", url], {}, tmp_path)
    assert code == 2 and out == ""
    assert "already holds rows" in err and "nothing was copied" in err

    code, _, err = await run_cli(["copy-db", "--to", "mysql://x@y/z"], {}, tmp_path)
    assert code == 2 and "postgresql://" in err
