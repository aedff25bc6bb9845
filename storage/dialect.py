"""The two SQL dialects the repositories speak, and turning `?` placeholders into `$n`."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache


class Dialect(StrEnum):
    """Which database a statement is for."""

    SQLITE = "sqlite"
    POSTGRES = "postgres"


# `?1` (numbered) or `?` (next in order), outside string literals.
_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?(\d*)")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """The statement with SQLite's `?` and `?n` placeholders as PostgreSQL's `$n`."""
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0).startswith("'"):
            return match.group(0)
        if match.group(1):
            return f"${match.group(1)}"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(replace, sql)
