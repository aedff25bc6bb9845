"""`kling-bot copy-db`: copy the SQLite database into PostgreSQL, to move to several replicas."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bot.cli.common import OK, CliError, Masker, UsageError, quiet_logging, say, settings_for
from storage.copying import CopyRefused, TargetNotEmpty, copy_database
from storage.database import Database, MissingDriverError, is_postgres_url
from storage.snapshot import open_snapshot

HIDDEN = "***"
_QUERY_PASSWORD = re.compile(r"(?i)(?<![^?&])(password=)[^&]*")


def shown(url: str) -> str:
    """A database URL for people: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:{HIDDEN}@{host}")
    return urlunsplit(parts._replace(query=_QUERY_PASSWORD.sub(rf"\g<1>{HIDDEN}", parts.query)))


def passwords_in(url: str) -> list[str]:
    """The passwords a database URL carries, in its user part or its query."""
    found = [urlsplit(url).password or ""]
    found += [match.group(0).split("=", 1)[1] for match in _QUERY_PASSWORD.finditer(url)]
    return [password for password in found if password]


async def copy_file(source: Path, url: str) -> dict[str, int]:
    """Copy the SQLite file at `source` into the (migrated, empty) database at `url`."""
    async with open_snapshot(source) as snapshot, Database.connect(url, pool_size=2) as target:
        return await copy_database(snapshot, target)


def print_counts(copied: dict[str, int]) -> None:
    """Rows per table, one aligned line each."""
    width = max((len(table) for table in copied), default=0)
    for table, count in copied.items():
        print(f"{table:<{width}}  {count:>9}")


def run_copy(args: argparse.Namespace, masker: Masker) -> int:
    """`kling-bot copy-db`."""
    settings = settings_for(masker, need_bot=False)
    source: Path = args.source or settings.database_path
    url: str | None = args.target or settings.database
    if not url:
        raise UsageError("nothing to copy into: give --to postgresql://… or set DATABASE_URL")
    if not is_postgres_url(url):
        raise UsageError("--to must start with postgresql:// (or postgres://)")
    masker.learn([*settings.secrets(), *passwords_in(url)])
    quiet_logging(settings)
    say(masker, f"copying {source} into {shown(url)}…")
    try:
        copied = asyncio.run(copy_file(source, url))
    except TargetNotEmpty as exc:
        raise UsageError(
            f"{exc}: copy-db copies only into an empty database, never over one in use; "
            "nothing was copied"
        ) from None
    except (CopyRefused, MissingDriverError) as exc:
        raise UsageError(f"{exc}; nothing was copied") from None
    except Exception as exc:  # the transaction rolled back: say so, do not crash
        detail = masker(str(exc).replace(url, shown(url)))
        raise CliError(f"copy failed, nothing was copied: {type(exc).__name__}: {detail}") from None
    print_counts(copied)
    say(masker, f"copied {sum(copied.values())} rows from {source} into {shown(url)}")
    return OK


def add_copy(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `copy-db` subcommand's arguments."""
    copy = commands.add_parser(
        "copy-db",
        help="copy the SQLite database into PostgreSQL (stop the bot first)",
        description="Copy every row of the bot's SQLite database, ids included, into an empty "
        "PostgreSQL database, in one transaction, and print the rows copied per table. Stop the "
        "bot first: a file another process has open is refused, and the bot cannot start while "
        "the copy runs. The file is only read, and must be at this version's schema (start this "
        "version of the bot on it once if it is older). The PostgreSQL database must exist; "
        "its tables are created if missing, and any row in them stops the copy. "
        "Exit status: 0 copied, 1 failed (nothing copied), 2 refused or bad arguments.",
    )
    copy.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="the SQLite file (default: DATABASE_PATH)",
    )
    copy.add_argument(
        "--to",
        dest="target",
        metavar="URL",
        help="postgresql://user:pass@host:port/db (default: DATABASE_URL)",
    )
    copy.set_defaults(handler=run_copy)
