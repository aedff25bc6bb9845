"""A throwaway PostgreSQL server for the tests: started once per session, a database per test."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SKIP_REASON = "no PostgreSQL binaries (initdb, postgres in /usr/lib/postgresql/*/bin or PATH)"
NO_ACCOUNT = "running as root and no `postgres` account to run the PostgreSQL server as"
# fsync and friends off: a server that lives as long as the test run need not survive a crash.
SERVER_OPTIONS = [
    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
    *("-c", "max_connections=200", "-c", "shared_buffers=32MB"),
    *("-c", "listen_addresses=127.0.0.1"),
]
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Server:
    """A running server: where it listens and how to make a database on it."""

    port: int
    pid: int = 0  # the postmaster's process id

    def url(self, database: str) -> str:
        """The URL of one database on the server, as DATABASE_URL takes it."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


def find_bindir() -> Path | None:
    """The folder of the newest installed PostgreSQL's initdb and postgres, if any."""
    if found := os.environ.get("PG_BINDIR"):
        return Path(found)
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_user() -> dict[str, Any]:
    # initdb and postgres refuse to run as root: run them as the `postgres` account then.
    return (
        {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
    )


def _has_account(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _wait_until_ready(bindir: Path, port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    ready = [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    while subprocess.run(ready, check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)


@contextmanager
def running_server(options: Sequence[str] = ()) -> Iterator[Server]:
    """Start a throwaway server in a temporary folder (SERVER_OPTIONS, then `options`); stop
    it and remove the folder at the end. RuntimeError when it cannot be had here."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(SKIP_REASON)
    if os.geteuid() == 0 and not _has_account("postgres"):
        raise RuntimeError(NO_ACCOUNT)
    folder = Path(tempfile.mkdtemp(prefix="kling-bot-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data, log, port = folder / "data", folder / "log", _free_port()
        started = time.monotonic()
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        subprocess.run(
            [*initdb, "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=folder,
            timeout=START_TIMEOUT,
            **_server_user(),
        )
        # The server is this process's own child (not pg_ctl's), so it is reaped when it stops.
        command = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(folder)]
        with log.open("wb") as out:
            server = subprocess.Popen(
                [*command, *SERVER_OPTIONS, *options],
                stdout=out,
                stderr=out,
                cwd=folder,
                **_server_user(),
            )
        try:
            _wait_until_ready(bindir, port, server, log)
            print(f"PostgreSQL started in {time.monotonic() - started:.1f} s on port {port}")
            yield Server(port, server.pid)
        finally:
            server.send_signal(signal.SIGINT)  # fast shutdown: disconnect everyone, stop
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """Start a PostgreSQL server in a temporary folder for this test run; stop it at the end."""
    if find_bindir() is None:
        pytest.skip(SKIP_REASON)
    if os.geteuid() == 0 and not _has_account("postgres"):
        pytest.skip(NO_ACCOUNT)
    with running_server() as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: Server) -> AsyncIterator[str]:
    """A new empty database on the test run's server, dropped after the test."""
    asyncpg = pytest.importorskip("asyncpg", reason="asyncpg not installed (the [postgres] extra)")
    name = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(postgres_server.url("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server.url(name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
