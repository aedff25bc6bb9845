"""Several bot processes on one PostgreSQL database and the loopback fakes, for process tests.

Each replica is `python -m bot` with the same settings (long polling, or webhook mode behind
the harness's proxy and Telegram delivery of tests/webhooks.py; PostgreSQL) and its own web
port. Which replica made a call to a fake is read from the call's client port: the connection
is found in /proc/net/tcp and its socket among the replicas' open files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import KIE_KEY, PHOTO, TOKEN, free_port
from tests.fakes.kie import FakeKie
from tests.fakes.server import serve
from tests.fakes.telegram import Call, FakeTelegram, FakeUser
from tests.webhooks import Deliverer, Proxy

ROOT = Path(__file__).parents[1]
BASE_ENV = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
STARTED = "kling-bot started"
LEADS = "this process now takes Telegram's updates"
# A replica's start-up (imports, migrations, first calls) on a busy 2-core machine.
START_TIMEOUT = 30.0


@dataclass
class Replica:
    """One bot process and what it wrote to stderr, line by line, with the time it came."""

    name: str
    process: asyncio.subprocess.Process
    port: int = 0  # where its web app listens (callbacks, the webhook)
    lines: list[tuple[float, str]] = field(default_factory=list)
    killed_at: float | None = None
    reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    @property
    def alive(self) -> bool:
        """Whether it still runs."""
        return self.process.returncode is None

    def said(self, text: str) -> list[float]:
        """When the replica logged a line containing `text`."""
        return [at for at, line in self.lines if text in line]

    def log(self) -> str:
        """Everything it logged."""
        return "\n".join(line for _, line in self.lines)

    async def read(self) -> None:
        """Collect stderr until the process closes it."""
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip()))


@dataclass
class Cluster:
    """Fakes, one PostgreSQL database and the replicas running against them."""

    telegram: FakeTelegram
    kie: FakeKie
    env: dict[str, str]
    cwd: Path
    telegram_url: str
    kie_url: str
    replicas: list[Replica] = field(default_factory=list)
    # In webhook mode: Telegram's delivery to the replicas, and the proxy at PUBLIC_URL.
    webhook: Deliverer | None = None
    proxy: Proxy | None = None
    _names: int = 0

    # ---- processes ---------------------------------------------------------------------------

    async def start(self, count: int = 1) -> list[Replica]:
        """Start `count` more replicas at once and wait until each has started."""
        started = [await self._spawn() for _ in range(count)]
        await asyncio.gather(*(self._until_started(r) for r in started))
        return started

    async def _spawn(self) -> Replica:
        self._names += 1
        port = free_port()
        env = {**BASE_ENV, "PYTHONPATH": str(ROOT), **self.env, "HTTP_PORT": str(port)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        replica = Replica(f"r{self._names}", process, port)
        replica.reader = asyncio.create_task(replica.read(), name=f"stderr-{replica.name}")
        self.replicas.append(replica)
        return replica

    async def _until_started(self, replica: Replica) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not replica.said(STARTED):
            if not replica.alive or time.monotonic() > deadline:
                raise AssertionError(f"{replica.name} did not start:\n{replica.log()}")
            await asyncio.sleep(0.05)

    async def kill(self, replica: Replica) -> float:
        """SIGKILL the replica (no cleanup of any kind); the moment it was sent."""
        replica.killed_at = time.monotonic()
        replica.process.send_signal(signal.SIGKILL)
        await replica.process.wait()
        assert replica.process.returncode == -signal.SIGKILL
        return replica.killed_at

    async def stop(self) -> None:
        """SIGTERM every replica still running, SIGKILL one that does not stop in time."""
        alive = [r for r in self.replicas if r.alive]
        for replica in alive:
            replica.process.send_signal(signal.SIGTERM)
        for replica in alive:
            try:
                await asyncio.wait_for(replica.process.wait(), 30)
            except TimeoutError:
                replica.process.send_signal(signal.SIGKILL)
                await replica.process.wait()
        for replica in self.replicas:
            if replica.reader is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(replica.reader, 5)

    def alive(self) -> list[Replica]:
        """The replicas still running."""
        return [r for r in self.replicas if r.alive]

    def upstreams(self) -> list[tuple[str, str]]:
        """(name, web root) of every replica that has started, dead or alive: what a proxy
        without health checks sends requests to."""
        return [(r.name, f"http://127.0.0.1:{r.port}") for r in self.replicas if r.said(STARTED)]

    def named(self, name: str) -> Replica:
        """The replica called `name`."""
        return next(r for r in self.replicas if r.name == name)

    # ---- who made a call ---------------------------------------------------------------------

    def maker(self, client: tuple[str, int] | None, server_url: str) -> Replica | None:
        """The running replica whose connection to the fake at `server_url` is `client`."""
        if client is None:
            return None
        server_port = urlsplit(server_url).port
        assert server_port is not None
        inode = _socket_inode(client[1], server_port)
        if inode is None:
            return None
        wanted = f"socket:[{inode}]"
        for replica in self.alive():
            folder = Path(f"/proc/{replica.pid}/fd")
            with contextlib.suppress(OSError):
                for fd in folder.iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd) == wanted:
                            return replica
        return None

    def leader(self) -> Replica | None:
        """The replica whose getUpdates call came last, if it still runs."""
        polls = self.telegram.calls_of("getUpdates")
        return self.maker(polls[-1].client, self.telegram_url) if polls else None

    async def until_leader(self, timeout: float = 15.0) -> Replica:
        """Wait until a running replica polls; that one."""
        deadline = time.monotonic() + timeout
        while (leader := self.leader()) is None:
            if time.monotonic() > deadline:
                raise AssertionError("no replica polls getUpdates")
            await asyncio.sleep(0.05)
        return leader

    def polls_after(self, moment: float) -> list[Call]:
        """getUpdates calls that arrived after `moment` (time.monotonic())."""
        return [c for c in self.telegram.calls_of("getUpdates") if c.at > moment]

    # ---- users -------------------------------------------------------------------------------

    def send_photo(self, user: FakeUser) -> dict[str, Any]:
        """The user sends a photo captioned with their own prompt."""
        return self.telegram.send_photo(user, PHOTO, prompt(user))

    async def draft(self, user: FakeUser, timeout: float = 20.0) -> dict[str, Any]:
        """The draft message the bot sent the user."""
        calls = await self.telegram.wait_for_call(
            "sendMessage", lambda c: is_draft(c, user), timeout=timeout
        )
        message: dict[str, Any] = calls[0].result
        return message

    def press(self, user: FakeUser, message: dict[str, Any], label: str) -> str:
        """The user taps the message's button whose text contains `label`; the query's id."""
        current = self.telegram.messages.get((user.id, message["message_id"]), message)
        return self.telegram.tap(user, current, button(current, label))

    def videos(self, user: FakeUser) -> list[Call]:
        """Videos sent to the user."""
        return [
            c
            for c in self.telegram.calls_of("sendVideo")
            if c.files.get("video") and int(c.params["chat_id"]) == user.id
        ]

    def said_to(self, user: FakeUser, text: str) -> list[Call]:
        """Messages sent or edited for the user that contain `text`."""
        return [
            c
            for c in self.telegram.calls
            if c.method in ("sendMessage", "editMessageText")
            and c.ok
            and int(c.params.get("chat_id", 0)) == user.id
            and text in str(c.params.get("text", ""))
        ]


def prompt(user: FakeUser) -> str:
    """The user's own caption, to tell the users' drafts apart."""
    return f"a kite over the hill for user {user.id}"


def is_draft(call: Call, user: FakeUser) -> bool:
    """Whether the call is the draft the bot sent for the user's photo."""
    return (
        call.ok
        and int(call.params.get("chat_id", 0)) == user.id
        and prompt(user) in str(call.params.get("text", ""))
        and "reply_markup" in (call.result or {})
    )


def button(message: dict[str, Any], label: str) -> str:
    """The callback data of the message's button whose text contains `label`."""
    rows = message["reply_markup"]["inline_keyboard"]
    return next(str(b["callback_data"]) for row in rows for b in row if label in b["text"])


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Wait until `condition` holds; how long that took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def _socket_inode(local_port: int, remote_port: int) -> int | None:
    """The inode of the loopback TCP socket from `local_port` to `remote_port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                local, remote, inode = fields[1], fields[2], int(fields[9])
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port
                    and inode
                ):
                    return inode
    return None


@asynccontextmanager
async def cluster(
    database_url: str, cwd: Path, *, webhook: bool = False, **env: str
) -> AsyncIterator[Cluster]:
    """Fakes of Telegram and kie on loopback and the settings replicas share; no replica yet.

    With `webhook`, the replicas take updates by webhook: PUBLIC_URL is the harness's proxy
    (`c.proxy`, for kie's callbacks) and `c.webhook` delivers Telegram's updates to them.
    """
    # In webhook mode the replicas listen on plain HTTP on loopback: see FakeTelegram.
    telegram = FakeTelegram(token=TOKEN, allow_loopback_http_webhook=webhook)
    async with AsyncExitStack() as stack:
        kie = await stack.enter_async_context(FakeKie(api_key=KIE_KEY))
        telegram_url = await stack.enter_async_context(serve(telegram.app))
        kie_url = await stack.enter_async_context(serve(kie.app))
        settings = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram_url,
            "KIE_API_KEY": KIE_KEY,
            "KIE_API_URL": kie_url,
            "KIE_UPLOAD_URL": kie_url,
            "DATABASE_URL": database_url,
            "DATABASE_PATH": str(cwd / "unused.sqlite3"),
            "HTTP_HOST": "127.0.0.1",
            "POLL_INTERVAL": "0.2",
            "LOG_LEVEL": "INFO",
            **env,
        }
        group = Cluster(telegram, kie, settings, cwd, telegram_url, kie_url)
        if webhook:
            group.proxy = proxy = Proxy(group.upstreams)
            stack.push_async_callback(proxy.aclose)
            settings["PUBLIC_URL"] = await stack.enter_async_context(serve(proxy.app))
            settings["TELEGRAM_WEBHOOK"] = "true"
            recorded = await _recorded_check(database_url, stack)
            deliverer = Deliverer(telegram, group.upstreams, recorded)
            group.webhook = await stack.enter_async_context(deliverer)
        try:
            yield group
        finally:
            if group.webhook is not None:
                await group.webhook.close()  # before the replicas stop, not after
            await group.stop()
            telegram.shutdown()
    logs = "\n".join(r.log() for r in group.replicas)
    assert TOKEN not in logs and KIE_KEY not in logs


async def _recorded_check(
    database_url: str, stack: AsyncExitStack
) -> Callable[[int], Awaitable[bool]]:
    """Whether an update is recorded handled in the replicas' database, asked on a small pool."""
    import asyncpg

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    stack.push_async_callback(pool.close)

    async def recorded(update_id: int) -> bool:
        handled = await pool.fetchval(
            "SELECT handled_at FROM updates WHERE update_id = $1", update_id
        )
        return handled is not None

    return recorded
