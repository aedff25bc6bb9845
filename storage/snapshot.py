"""An SQLite file opened to be copied: locked against every other user, read, never written."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from storage.copying import CopyRefused
from storage.database import Database
from storage.migrations import SQLITE_MIGRATIONS
from storage.sqlite import SqliteDatabase

# Exclusive locking mode keeps the lock until the connection closes; with it, taking the
# transaction fails at once (no busy wait) while any other connection, a running bot's
# included, has the file open, and a bot starting meanwhile waits and then gives up.
_EXCLUSIVE_MODE = "PRAGMA locking_mode = EXCLUSIVE"
_TAKE_FILE = "BEGIN EXCLUSIVE"
_LET_GO = "ROLLBACK"
_VERSION = "PRAGMA user_version"


class SourceError(CopyRefused):
    """The SQLite file cannot be copied as it is; the message says why."""


def _uri(path: Path) -> str:
    # mode=rw: a missing file is an error, never created empty.
    return f"{path.resolve().as_uri()}?mode=rw"


@asynccontextmanager
async def open_snapshot(path: Path | str) -> AsyncIterator[Database]:
    """The SQLite database at `path`, at this version's schema, read in one transaction.

    Refused (SourceError) if the file is missing, not a database, open in another process,
    or at an older or newer schema version than this kling-bot's. Nothing is written: the
    transaction is rolled back. (Closing the last connection to a file that a killed bot left
    with a write-ahead log folds the log into the file, as the bot's next start would; no row
    changes.)
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        conn = await aiosqlite.connect(_uri(path), uri=True, isolation_level=None, timeout=0)
    except sqlite3.Error as exc:
        raise SourceError(f"{path} cannot be opened: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        await _take(conn, path)
        try:
            await _check_version(conn, path)
            yield SqliteDatabase(conn)
        finally:
            await conn.execute(_LET_GO)
    finally:
        await conn.close()


async def _take(conn: aiosqlite.Connection, path: Path) -> None:
    try:
        await conn.execute(_EXCLUSIVE_MODE)
        await conn.execute(_TAKE_FILE)
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise SourceError(
                f"{path} is open in another process (is the bot still running on it?): "
                "stop the bot, then copy"
            ) from None
        raise SourceError(f"{path} cannot be read: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{path} is not an SQLite database ({exc})") from None


async def _check_version(conn: aiosqlite.Connection, path: Path) -> None:
    try:
        async with conn.execute(_VERSION) as cursor:
            row = await cursor.fetchone()
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{path} is not an SQLite database ({exc})") from None
    version, current = int(row[0]) if row else 0, len(SQLITE_MIGRATIONS)
    if version == 0:
        raise SourceError(f"{path} holds no kling-bot database (schema version 0)")
    if version < current:
        raise SourceError(
            f"{path} is at schema version {version}, this kling-bot's is {current}: start this "
            "version of the bot on it once (it migrates the file as it starts), stop it, "
            "then copy"
        )
    if version > current:
        raise SourceError(
            f"{path} is at schema version {version}, newer than this kling-bot's ({current}): "
            "copy it with the kling-bot version that wrote it"
        )
