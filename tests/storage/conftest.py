"""Every storage test that takes `db` (or `store`) runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage import Database
from tests.postgres import postgres_server, postgres_url  # noqa: F401  (the fixtures, here)


@dataclass(frozen=True)
class Store:
    """One test's database, which a test may open several times (as several processes would)."""

    kind: str
    path: Path
    url: str | None

    def open(self) -> AbstractAsyncContextManager[Database]:
        """A new connection (SQLite) or pool (PostgreSQL) to the test's database."""
        return Database.connect(self.url) if self.url else Database.open(self.path)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """The test's database: an SQLite file, or a new database on the test PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    return Store(request.param, tmp_path / "sub" / "bot.sqlite3", url)


@pytest.fixture
async def db(store: Store) -> AsyncIterator[Database]:
    """The test's database, opened once."""
    async with store.open() as database:
        yield database
