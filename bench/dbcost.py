"""The database's own cost: what PostgreSQL's server or SQLite's thread did, read before and after.

PostgreSQL: the CPU time of every server process (the postmaster, its backends and background
workers, and those that already exited), `pg_stat_statements` (statements and their execution
time) and `pg_stat_database` (transactions, rows read and written, buffer reads) of the
bot's database. SQLite, which runs inside the bot: the CPU time of aiosqlite's thread (where
every SQLite call runs) and the statements SQLite executed, counted by a trace callback that
`bench.botproc` installs when `STATS_ENV` names a file it then keeps writing.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bench.measure import CLOCK_TICKS

# Where a bot process writes its SQLite counts (see `install_sqlite_counter`).
STATS_ENV = "BENCH_DB_STATS"
STATS_PERIOD = 0.2
BENCH_DATABASE = "kling_bench"
PG_STATEMENTS = "pg_stat_statements"
NAN = math.nan


@dataclass(frozen=True)
class DbReading:
    """Cumulative counts of the database's work at one moment (NaN: not measured here)."""

    cpu: float = NAN  # CPU seconds of the engine (server processes, or SQLite's thread)
    statements: float = NAN  # statements executed, BEGIN and COMMIT included
    transactions: float = NAN  # committed and rolled back
    exec_ms: float = NAN  # the server's own execution time of those statements
    rows_read: float = NAN  # tuples returned by scans and fetched by index
    rows_written: float = NAN  # tuples inserted, updated and deleted
    blocks: float = NAN  # buffer reads, from the cache or not
    size: float = NAN  # bytes of the database (not a counter: the later reading counts)

    def minus(self, earlier: DbReading) -> DbReading:
        """What happened between `earlier` and this reading (the size as it is now)."""
        values = {f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in fields(self)}
        values["size"] = self.size
        return DbReading(**values)

    def plus(self, other: DbReading) -> DbReading:
        """Two processes' readings together (NaN stays NaN only when both are)."""

        def add(a: float, b: float) -> float:
            if math.isnan(a):
                return b
            return a if math.isnan(b) else a + b

        return DbReading(
            **{f.name: add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )

    def per(self, count: int) -> DbReading:
        """Each counter divided by `count` (the size kept whole)."""
        values = {f.name: getattr(self, f.name) / count for f in fields(self)}
        values["size"] = self.size
        return DbReading(**values)


# ---- SQLite, inside the bot process --------------------------------------------------------


class SqliteCounter:
    """Counts the statements SQLite runs on every connection the process opens, and which
    threads run them (aiosqlite's, one per connection)."""

    def __init__(self) -> None:
        self.statements = 0
        self.transactions = 0
        self.threads: set[int] = set()

    def trace(self, statement: str) -> None:
        """sqlite3's trace callback: one call per statement executed."""
        self.statements += 1
        if statement.lstrip()[:6].upper() in ("COMMIT", "ROLLBA"):
            self.transactions += 1

    def cpu(self) -> float:
        """CPU seconds of the connections' threads so far (a thread that ended no longer
        counts: read while the database is open)."""
        total = 0.0
        for tid in list(self.threads):
            try:
                stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
        return total

    def write(self, path: Path) -> None:
        """Write the counts to `path` at once (a reader never sees half a file)."""
        data = {"cpu": self.cpu(), "statements": self.statements, "transactions": self.transactions}
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(data))
        partial.replace(path)


def install_sqlite_counter() -> SqliteCounter:
    """Wrap `sqlite3.connect` (which aiosqlite calls in its own thread) so that every
    connection counts its statements, and note the thread it runs in."""
    import sqlite3

    counter = SqliteCounter()
    connect: Callable[..., sqlite3.Connection] = sqlite3.connect

    def counted(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(counter.trace)
        counter.threads.add(threading.get_native_id())
        return conn

    sqlite3.connect = counted  # type: ignore[assignment]
    return counter


def read_sqlite(path: Path) -> DbReading:
    """What a bot process last wrote of its SQLite counts; NaN where it wrote nothing."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return DbReading()
    return DbReading(
        cpu=float(data["cpu"]),
        statements=float(data["statements"]),
        transactions=float(data["transactions"]),
    )


def sqlite_reading(stats: Path, database: Path) -> DbReading:
    """The counts a bot wrote, with the database file's size (WAL included)."""
    found = read_sqlite(stats)
    size = sum(
        p.stat().st_size
        for p in (database, database.with_name(database.name + "-wal"))
        if p.exists()
    )
    return DbReading(
        cpu=found.cpu, statements=found.statements, transactions=found.transactions, size=size
    )


# ---- PostgreSQL, a server of the benchmark's own -------------------------------------------


def pg_stat_statements_available() -> bool:
    """Whether the server's library folder has pg_stat_statements."""
    from tests.postgres import find_bindir

    bindir = find_bindir()
    return bindir is not None and (bindir.parent / "lib" / f"{PG_STATEMENTS}.so").exists()


@dataclass(frozen=True)
class BenchPostgres:
    """The benchmark's PostgreSQL server: the bot's database on it, and how to read its cost."""

    admin_url: str
    url: str
    postmaster: int
    statements: bool  # pg_stat_statements loaded

    def server_cpu(self) -> float:
        """CPU seconds of every server process: the postmaster's own and its reaped children's,
        and those of the children still running."""
        total = 0.0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid = int(entry.name), int(stat[1])
            if pid == self.postmaster:
                total += sum(int(v) for v in stat[11:15]) / CLOCK_TICKS
            elif ppid == self.postmaster:
                total += (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
        return total

    async def reading(self, reset: bool = False) -> DbReading:
        """The server's cumulative counts for the bot's database now; with `reset`,
        pg_stat_statements starts again from zero (so `top` tells of what follows) and the
        reading says 0 statements."""
        import asyncpg

        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            row = await conn.fetchrow(
                "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched, "
                "tup_inserted + tup_updated + tup_deleted, blks_hit + blks_read, "
                "pg_database_size(datname) FROM pg_stat_database WHERE datname = $1",
                BENCH_DATABASE,
            )
            assert row is not None
            statements, exec_ms = NAN, NAN
            if self.statements:
                done = await conn.fetchrow(
                    "SELECT COALESCE(SUM(calls), 0), COALESCE(SUM(total_exec_time), 0) "
                    f"FROM {PG_STATEMENTS} s JOIN pg_database d ON d.oid = s.dbid "
                    "WHERE d.datname = $1",
                    BENCH_DATABASE,
                )
                assert done is not None
                statements, exec_ms = float(done[0]), float(done[1])
                if reset:
                    await conn.execute(f"SELECT {PG_STATEMENTS}_reset()")
                    statements, exec_ms = 0.0, 0.0
        finally:
            await conn.close()
        return DbReading(
            cpu=self.server_cpu(),
            statements=statements,
            transactions=float(row[0]),
            exec_ms=exec_ms,
            rows_read=float(row[1]),
            rows_written=float(row[2]),
            blocks=float(row[3]),
            size=float(row[4]),
        )

    async def top(self, count: int = 6) -> list[Statement]:
        """The statements that took the most execution time on the bot's database since the
        last reset (none without pg_stat_statements)."""
        import asyncpg

        if not self.statements:
            return []
        conn = await asyncpg.connect(self.admin_url)
        try:
            rows = await conn.fetch(
                "SELECT query, calls, total_exec_time, rows "
                f"FROM {PG_STATEMENTS} s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = $1 ORDER BY total_exec_time DESC LIMIT $2",
                BENCH_DATABASE,
                count,
            )
        finally:
            await conn.close()
        return [
            Statement(" ".join(str(r[0]).split()), int(r[1]), float(r[2]), int(r[3])) for r in rows
        ]


@dataclass(frozen=True)
class Statement:
    """One normalised statement's totals in pg_stat_statements."""

    query: str
    calls: int
    exec_ms: float
    rows: int


@asynccontextmanager
async def bench_postgres() -> AsyncIterator[BenchPostgres]:
    """A throwaway server (as the tests start one) with pg_stat_statements when it is there,
    and an empty database for the bot; everything removed at the end. The server starts and
    stops in a few seconds during which this blocks the event loop: call it before the run."""
    import asyncpg

    from tests.postgres import running_server

    statements = pg_stat_statements_available()
    options = ["-c", f"shared_preload_libraries={PG_STATEMENTS}"] if statements else []
    with running_server(options) as server:
        admin = server.url("postgres")
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{BENCH_DATABASE}"')
            if statements:
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {PG_STATEMENTS}")
        finally:
            await conn.close()
        yield BenchPostgres(admin, server.url(BENCH_DATABASE), server.pid, statements)


def postgres_missing() -> str | None:
    """Why the benchmark cannot run a PostgreSQL server here, or None."""
    import importlib.util

    from tests.postgres import NO_ACCOUNT, SKIP_REASON, _has_account, find_bindir

    if importlib.util.find_spec("asyncpg") is None:
        return 'asyncpg is not installed: pip install ".[postgres]"'
    if find_bindir() is None:
        return SKIP_REASON
    if os.geteuid() == 0 and not _has_account("postgres"):
        return NO_ACCOUNT
    return None


def server_version() -> str:
    """The version of the PostgreSQL the benchmark would start ("15"), or "?"."""
    from tests.postgres import find_bindir

    bindir = find_bindir()
    return bindir.parent.name if bindir is not None else "?"
