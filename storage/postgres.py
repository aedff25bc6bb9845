"""PostgreSQL through an asyncpg pool: statements, transactions and migrations under a lock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import asyncpg

from storage.database import Database, Holding, Params, Row, Session
from storage.dialect import Dialect, numbered
from storage.migrations import POSTGRES_MIGRATIONS

# One key for "migrating": replicas starting together apply each migration once, in turn.
MIGRATION_LOCK = 0x6B6C696E67  # "kling"
_TAKE_MIGRATION_LOCK = "SELECT pg_advisory_lock($1)"
_FREE_MIGRATION_LOCK = "SELECT pg_advisory_unlock($1)"
_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""
_VERSION = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"
_RECORD_VERSION = "INSERT INTO schema_migrations (version) VALUES ($1)"
# Held by a session until it lets go or ends (its process died: the server frees it at once).
_TRY_HOLD = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
_LET_GO = "SELECT pg_advisory_unlock(hashtextextended($1, 0))"
# How long a held lock's connection may take to answer before the lock counts as lost.
ALIVE_TIMEOUT = 5.0
# Held until commit or rollback; a name hashes to a 64-bit key (a collision only makes two
# unrelated transactions wait for each other).
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))"


def _changed(status: str) -> int:
    """Rows a command changed, from its status tag (`UPDATE 2`, `INSERT 0 1`)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresSession(Session):
    """Statements on one pooled connection, inside a transaction or each on its own."""

    dialect = Dialect.POSTGRES

    def __init__(self, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""
        return _changed(await self._conn.execute(numbered(sql), *params))

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT of one row; return its id (`RETURNING id`)."""
        new_id = await self._conn.fetchval(numbered(sql) + " RETURNING id", *params)
        assert new_id is not None
        return int(new_id)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""
        row: asyncpg.Record | None = await self._conn.fetchrow(numbered(sql), *params)
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""
        return list(await self._conn.fetch(numbered(sql), *params))

    async def lock(self, key: str) -> None:
        """Take a transaction-level advisory lock named `key`."""
        await self._conn.execute(_LOCK, key)


class PostgresHolding(Holding):
    """A session advisory lock on a connection kept out of the pool while it is held."""

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record],
        name: str,
    ) -> None:
        self._pool = pool
        self._conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record] | None = conn
        self._name = name

    async def alive(self) -> bool:
        """Whether the lock's connection still answers (the server keeps the lock while so)."""
        if self._conn is None:
            return False
        try:
            await self._conn.fetchval("SELECT 1", timeout=ALIVE_TIMEOUT)
        except Exception:  # any failure of the lock's connection (asyncpg's own state too)
            return False
        return True

    async def release(self) -> None:
        """Unlock and give the connection back; a dead connection's lock is already gone."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            await conn.execute(_LET_GO, self._name, timeout=ALIVE_TIMEOUT)
        except Exception:  # a broken connection: the server already let the lock go
            with contextlib.suppress(Exception):
                conn.terminate()
        # A broken connection may already be detached from the pool.
        with contextlib.suppress(Exception):
            await self._pool.release(conn)


class PostgresDatabase(Database):
    """A pool of connections: statements run side by side, each transaction on its own one."""

    dialect = Dialect.POSTGRES

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    @classmethod
    @asynccontextmanager
    async def open_url(cls, url: str, *, pool_size: int = 10) -> AsyncIterator[PostgresDatabase]:
        """Connect a pool to `url` and apply the migrations it lacks."""
        pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size)
        try:
            db = cls(pool)
            await db._migrate(POSTGRES_MIGRATIONS)
            yield db
        finally:
            await pool.close()

    async def _migrate(self, migrations: Iterable[Sequence[str]]) -> None:
        async with self._pool.acquire() as conn:
            # A session lock, freed below or when the connection dies with its process.
            await conn.execute(_TAKE_MIGRATION_LOCK, MIGRATION_LOCK)
            try:
                await conn.execute(_VERSIONS_TABLE)
                current = int(await conn.fetchval(_VERSION))
                for number, statements in enumerate(migrations, start=1):
                    if number <= current:
                        continue
                    async with conn.transaction():
                        for statement in statements:
                            await conn.execute(statement)
                        await conn.execute(_RECORD_VERSION, number)
            finally:
                await conn.execute(_FREE_MIGRATION_LOCK, MIGRATION_LOCK)

    async def schema_version(self) -> int:
        """Number of migrations applied (the highest in `schema_migrations`)."""
        row = await self.fetchone(_VERSION)
        return int(row[0]) if row else 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """Run statements atomically on one connection (READ COMMITTED); roll back on error."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresSession(conn)

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement on its own; return the rows it changed."""
        async with self._pool.acquire() as conn:
            return await PostgresSession(conn).execute(sql, params)

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT on its own; return the new row id."""
        async with self._pool.acquire() as conn:
            return await PostgresSession(conn).insert(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""
        async with self._pool.acquire() as conn:
            return await PostgresSession(conn).fetchone(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""
        async with self._pool.acquire() as conn:
            return await PostgresSession(conn).fetchall(sql, params)

    async def try_hold(self, name: str) -> Holding | None:
        """The session lock named `name` on a connection of its own; None if it is taken."""
        conn = await self._pool.acquire()
        try:
            if await conn.fetchval(_TRY_HOLD, name):
                return PostgresHolding(self._pool, conn, name)
        except BaseException:
            await self._pool.release(conn)
            raise
        await self._pool.release(conn)
        return None
