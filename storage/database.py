"""The database interface the repositories use, and opening SQLite or PostgreSQL behind it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, overload

from storage.dialect import Dialect

Params = Sequence[Any]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
INSTALL_DRIVER = 'pip install ".[postgres]"'


class MissingDriverError(RuntimeError):
    """DATABASE_URL names PostgreSQL but asyncpg is not installed."""


class Row(Protocol):
    """A result row: by position, by column name, and as a mapping (`dict(row)`)."""

    @overload
    def __getitem__(self, key: str, /) -> Any: ...
    @overload
    def __getitem__(self, key: int, /) -> Any: ...
    def keys(self) -> Iterable[str]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Session(ABC):
    """Statements run inside one transaction (or one turn on the connection)."""

    dialect: Dialect

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; return the number of rows it changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run an INSERT of one row into a table with an `id`; return the new id."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""

    @abstractmethod
    async def lock(self, key: str) -> None:
        """Hold a lock named `key` until the transaction ends (other holders wait)."""


class Database(ABC):
    """SQLite (`Database.open`) or PostgreSQL (`Database.connect`), used the same way."""

    dialect: Dialect

    @classmethod
    @asynccontextmanager
    async def open(cls, path: Path | str) -> AsyncIterator[Database]:
        """Open (creating folder and file), configure and migrate an SQLite database."""
        from storage.sqlite import SqliteDatabase

        async with SqliteDatabase.open_file(path) as db:
            yield db

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, *, pool_size: int = 10) -> AsyncIterator[Database]:
        """Connect a pool to the PostgreSQL database at `url` and migrate it."""
        try:
            from storage.postgres import PostgresDatabase
        except ModuleNotFoundError as exc:
            if exc.name != "asyncpg":
                raise
            raise MissingDriverError(f"PostgreSQL needs asyncpg: {INSTALL_DRIVER}") from exc
        async with PostgresDatabase.open_url(url, pool_size=pool_size) as db:
            yield db

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Session]:
        """Run statements atomically; roll back if the block raises."""

    @abstractmethod
    async def schema_version(self) -> int:
        """Number of migrations applied."""

    @abstractmethod
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement on its own; return the rows it changed."""

    @abstractmethod
    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT on its own; return the new row id."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Return the first row of a query, if any."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Return every row of a query."""

    @abstractmethod
    async def try_hold(self, name: str) -> Holding | None:
        """Hold the lock named `name` across transactions until released or this process
        ends; None if another process holds it."""


class Holding(ABC):
    """A lock held for as long as this process's connection to the database lives."""

    @abstractmethod
    async def alive(self) -> bool:
        """Whether the lock is still held (its connection still answers)."""

    @abstractmethod
    async def release(self) -> None:
        """Let the lock go; idempotent."""


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return url.startswith(POSTGRES_SCHEMES)


@asynccontextmanager
async def open_database(url: str | None, path: Path) -> AsyncIterator[Database]:
    """PostgreSQL at `url` (DATABASE_URL) if one is given, else SQLite at `path`."""
    if not url:
        async with Database.open(path) as db:
            yield db
        return
    if not is_postgres_url(url):
        raise ValueError("DATABASE_URL must start with postgresql:// (or postgres://)")
    async with Database.connect(url) as db:
        yield db
