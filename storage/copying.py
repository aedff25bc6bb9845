"""Copying every row of an SQLite database, ids included, into an empty database."""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Any

from storage.database import Database, Session
from storage.dialect import Dialect

# Every table of the source, read from it: tables added by later migrations are copied too.
# SQLite's own tables (sqlite_sequence, sqlite_stat1, …) are not the bot's.
_TABLES = (
    "SELECT name FROM sqlite_master WHERE type = 'table' "
    "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
)
_COLUMNS = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
_REFERENCES = 'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)'
# Pages in rowid order: memory stays bounded however large the file is.
_PAGE = "SELECT rowid, {columns} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
_INSERT = "INSERT INTO {table} ({columns}) VALUES {rows}"
_COUNT = "SELECT COUNT(*) FROM {table}"
# PostgreSQL: no other connection may write these tables between the check that they are
# empty and the commit (reads go on).
_LOCK_TABLES = "LOCK TABLE {tables} IN EXCLUSIVE MODE"
# Columns whose default comes from a sequence (identity or serial), and moving that sequence
# past the largest copied value so that the next default does not collide with a copied id.
_SEQUENCED_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = ?
  AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL
"""
_ADVANCE = (
    "SELECT setval(pg_get_serial_sequence(?, ?), COALESCE(MAX({column}), 0) + 1, false) "
    "FROM {table}"
)

# Parameters per INSERT: both databases allow 32,766 or more.
MAX_PARAMETERS = 10_000


class CopyRefused(Exception):
    """Nothing was copied: the source or the target is not fit; the message says why."""


class TargetNotEmpty(CopyRefused):
    """The target already holds rows: a copy never merges into or overwrites a database."""

    def __init__(self, rows: dict[str, int]) -> None:
        held = ", ".join(f"{table}: {count}" for table, count in rows.items())
        super().__init__(f"the target database already holds rows ({held})")
        self.rows = rows


def quoted(name: str) -> str:
    """`name` as an SQL identifier, the same on both databases."""
    return '"' + name.replace('"', '""') + '"'


async def copy_database(source: Database, target: Database) -> dict[str, int]:
    """Copy every row of every table of `source` (SQLite) into the empty `target`.

    One transaction on the target: all or nothing. Ids are kept, and on PostgreSQL each
    identity sequence is moved past them. JSON documents (TEXT on SQLite, JSONB on PostgreSQL)
    go as their text, which PostgreSQL checks. Returns the rows copied per table, in the order
    copied (referenced tables first).
    """
    if source.dialect is not Dialect.SQLITE:
        raise ValueError("copy_database reads an SQLite source")
    versions = (await source.schema_version(), await target.schema_version())
    if versions[0] != versions[1]:
        raise CopyRefused(
            f"the source is at schema version {versions[0]}, the target at {versions[1]}"
        )
    tables = await _tables_in_order(source)
    columns = {table: await _columns(source, table) for table in tables}
    async with target.transaction() as tx:
        if tx.dialect is Dialect.POSTGRES and tables:
            await tx.execute(_LOCK_TABLES.format(tables=", ".join(map(quoted, tables))))
        held = {table: await _count(tx, table) for table in tables}
        if any(held.values()):
            raise TargetNotEmpty({table: count for table, count in held.items() if count})
        copied = {table: await _copy_table(source, tx, table, columns[table]) for table in tables}
        if tx.dialect is Dialect.POSTGRES:
            for table in tables:
                await _advance_sequences(tx, table)
    return copied


async def _tables_in_order(source: Database) -> list[str]:
    # Referenced tables first: PostgreSQL checks each foreign key as its row goes in.
    names = [str(row[0]) for row in await source.fetchall(_TABLES)]
    graph = {
        name: {str(row[0]) for row in await source.fetchall(_REFERENCES, (name,))} - {name}
        for name in names
    }
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise CopyRefused(f"the tables' foreign keys form a cycle: {exc.args[1]}") from None


async def _columns(source: Database, table: str) -> list[str]:
    return [str(row[0]) for row in await source.fetchall(_COLUMNS, (table,))]


async def _count(tx: Session, table: str) -> int:
    row = await tx.fetchone(_COUNT.format(table=quoted(table)))
    return int(row[0]) if row else 0


async def _copy_table(source: Database, tx: Session, table: str, columns: list[str]) -> int:
    names = ", ".join(map(quoted, columns))
    page = max(1, MAX_PARAMETERS // len(columns))
    read = _PAGE.format(columns=names, table=quoted(table))
    placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    copied, after = 0, -(2**63)
    while rows := await source.fetchall(read, (after, page)):
        after = int(rows[-1][0])
        values: list[Any] = [value for row in rows for value in tuple(row)[1:]]
        insert = _INSERT.format(
            table=quoted(table), columns=names, rows=", ".join([placeholders] * len(rows))
        )
        await tx.execute(insert, values)
        copied += len(rows)
    return copied


async def _advance_sequences(tx: Session, table: str) -> None:
    for row in await tx.fetchall(_SEQUENCED_COLUMNS, (table,)):
        column = str(row[0])
        advance = _ADVANCE.format(column=quoted(column), table=quoted(table))
        await tx.fetchone(advance, (quoted(table), column))
