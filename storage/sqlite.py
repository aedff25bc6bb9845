"""SQLite: one aiosqlite connection with WAL, a busy timeout, migrations and serialised access."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from storage.database import Database, Holding, Params, Row, Session
from storage.dialect import Dialect
from storage.migrations import SQLITE_MIGRATIONS

# Tries at switching a new file to WAL while other connections do the same (about 6 s in all).
WAL_ATTEMPTS = 15


class SqliteSession(Session):
    """Statements run inside one exclusive turn on the connection."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        await cursor.close()
        return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT; return the new row id."""
        cursor = await self._conn.execute(sql, params)
        await cursor.close()
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""
        async with self._conn.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def lock(self, key: str) -> None:
        """Nothing to do: BEGIN IMMEDIATE already holds the whole file's write lock."""


class SoleHolding(Holding):
    """One process owns an SQLite file: it holds every lock it asks for."""

    async def alive(self) -> bool:
        """Always: nobody else could have taken it."""
        return True

    async def release(self) -> None:
        """Nothing to let go."""


class SqliteDatabase(Database):
    """Owns the connection; every statement and transaction takes its turn."""

    dialect = Dialect.SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        # One connection is shared by all coroutines: a statement from one must never land
        # inside another's open transaction.
        self._lock = asyncio.Lock()
        self._session = SqliteSession(conn)

    @classmethod
    @asynccontextmanager
    async def open_file(cls, path: Path | str) -> AsyncIterator[SqliteDatabase]:
        """Open (creating folder and file), configure and migrate the database."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(str(path), isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            db = cls(conn)
            await db._configure()
            await db._migrate(SQLITE_MIGRATIONS)
            yield db
        finally:
            await conn.close()

    async def _configure(self) -> None:
        # First: another process opening the file at the same time then waits, not fails.
        await self._conn.execute("PRAGMA busy_timeout = 5000")
        await self._switch_to_wal()
        for pragma in ("PRAGMA synchronous = NORMAL", "PRAGMA foreign_keys = ON"):
            await self._conn.execute(pragma)

    async def _switch_to_wal(self) -> None:
        # Switching a new file to WAL needs it to itself, and SQLite answers "locked" at once,
        # without waiting, when another connection is switching it too: wait and try again.
        for attempt in range(1, WAL_ATTEMPTS + 1):
            try:
                await self._conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == WAL_ATTEMPTS:
                    raise
                await asyncio.sleep(0.05 * attempt)

    async def _migrate(self, migrations: Iterable[Sequence[str]]) -> None:
        current = await self.schema_version()
        for number, statements in enumerate(migrations, start=1):
            if number <= current:
                continue
            async with self.transaction() as tx:
                # Read again under the write lock: another process may have just applied it.
                row = await tx.fetchone("PRAGMA user_version")
                if row is not None and int(row[0]) >= number:
                    continue
                for statement in statements:
                    await tx.execute(statement)
                await tx.execute(f"PRAGMA user_version = {number:d}")

    async def schema_version(self) -> int:
        """Number of migrations applied (`PRAGMA user_version`)."""
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """Run statements atomically; roll back if the block raises."""
        async with self._lock:
            # IMMEDIATE: the write lock is taken before the first read, so another connection
            # cannot write between what a transaction reads and what it writes.
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._session
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement on its own; return the rows it changed."""
        async with self._lock:
            return await self._session.execute(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT on its own; return the new row id."""
        async with self._lock:
            return await self._session.insert(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""
        async with self._lock:
            return await self._session.fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""
        async with self._lock:
            return await self._session.fetchall(sql, params)

    async def try_hold(self, name: str) -> Holding | None:
        """Every lock: one process uses an SQLite file."""
        return SoleHolding()
