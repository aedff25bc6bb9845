"""SIGKILL the bot at each step of a task; after a restart nothing is lost or paid twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    KIE_KEY,
    KLING_ACCESS,
    KLING_SECRET,
    PHOTO,
    TOKEN,
    TUZI_KEY,
    free_port,
)
from tests.fakes.kie import FakeKie
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve
from tests.fakes.telegram import Call, FakeTelegram, FakeUser
from tests.ledger import MONEY

ROOT = Path(__file__).parents[1]
BASE_ENV = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}


@dataclass
class World:
    """Fakes, a database, and the bot as a real process that can be killed."""

    telegram: FakeTelegram
    kie: FakeKie
    kling: FakeKling
    tuzi: FakeKling
    env: dict[str, str]
    cwd: Path
    user: FakeUser = field(default_factory=lambda: FakeUser(id=4242))
    process: asyncio.subprocess.Process | None = None
    logs: list[str] = field(default_factory=list)

    async def start(self) -> None:
        """Start the bot and wait until it polls Telegram."""
        polls = len(self.telegram.calls_of("getUpdates"))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env={**BASE_ENV, "PYTHONPATH": str(ROOT), **self.env},
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await self.telegram.wait_for_call("getUpdates", count=polls + 1, timeout=20)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        _, err = await self.process.communicate()
        self.logs.append(err.decode())
        assert self.process.returncode == -signal.SIGKILL

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(self.process.communicate(), 30)
            self.logs.append(err.decode())

    async def generate(self, caption: str = "a kite climbs into the wind") -> dict[str, Any]:
        """The user sends a photo and taps Generate; return the photo message."""
        photo = self.telegram.send_photo(self.user, PHOTO, caption)
        draft = await self.telegram.wait_for_call(
            "sendMessage", lambda c: c.ok and caption in c.params["text"]
        )
        self.telegram.tap(self.user, draft[0].result, go_button(draft[0]))
        return photo

    def videos(self) -> list[Call]:
        return [c for c in self.telegram.calls_of("sendVideo") if c.files.get("video")]


def go_button(call: Call) -> str:
    rows = call.result["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if "Generate" in b["text"])


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    telegram = FakeTelegram(token=TOKEN)
    async with AsyncExitStack() as stack:
        kie = await stack.enter_async_context(FakeKie(api_key=KIE_KEY))
        kling = await stack.enter_async_context(
            FakeKling(access_key=KLING_ACCESS, secret_key=KLING_SECRET)
        )
        tuzi = await stack.enter_async_context(
            FakeKling(api_key=TUZI_KEY, prefix="/kling", proxy_rules=True)
        )
        tg_url = await stack.enter_async_context(serve(telegram.app))
        kie_url = await stack.enter_async_context(serve(kie.app))
        kling_url = await stack.enter_async_context(serve(kling.app))
        tuzi_url = await stack.enter_async_context(serve(tuzi.app))
        port = free_port()
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg_url,
            "KIE_API_KEY": KIE_KEY,
            "KIE_API_URL": kie_url,
            "KIE_UPLOAD_URL": kie_url,
            "KLING_ACCESS_KEY": KLING_ACCESS,
            "KLING_SECRET_KEY": KLING_SECRET,
            "KLING_API_URL": kling_url,
            "TUZI_API_KEY": TUZI_KEY,
            "TUZI_API_URL": f"{tuzi_url}/kling",
            "DATABASE_PATH": str(tmp_path / "db" / "bot.sqlite3"),
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(port),
            "POLL_INTERVAL": "0.1",
        }
        world = World(telegram, kie, kling, tuzi, env, tmp_path)
        try:
            yield world
        finally:
            await world.stop()
            telegram.shutdown()
    logs = "\n".join(world.logs)
    assert TOKEN not in logs and KIE_KEY not in logs and KLING_SECRET not in logs
    assert TUZI_KEY not in logs


async def kill_during_the_create(
    world: World, fake: FakeKie | FakeKling, endpoint: str
) -> dict[str, Any]:
    """Start the bot, tap Generate, and SIGKILL it while the provider, having taken the
    create (it is paid for), holds the answer; return the photo message."""
    await world.start()
    held = fake.hold(endpoint, after=True)
    photo = await world.generate()
    await held.wait()
    await world.kill()
    held.release()
    return photo


def with_callbacks(world: World) -> None:
    """Let providers call the bot's web app back (PUBLIC_URL on loopback)."""
    world.env["PUBLIC_URL"] = f"http://127.0.0.1:{world.env['HTTP_PORT']}"


async def test_killed_after_the_draft_claim(world: World) -> None:
    await world.start()
    held = world.telegram.hold("getFile")  # claimed, about to fetch the photo
    photo = await world.generate()
    await held.wait()
    await world.kill()
    held.release()
    world.kie.finish_after = 0.2
    await world.start()
    video = (await world.telegram.wait_for_call("sendVideo", timeout=10))[0]
    assert video.params["reply_parameters"]["message_id"] == photo["message_id"]
    await asyncio.sleep(0.5)
    assert len(world.kie.creates()) == 1 and len(world.videos()) == 1


async def test_killed_after_the_upload(world: World) -> None:
    await world.start()
    held = world.kie.hold("upload", after=True)  # stored at kie, answer never arrives
    await world.generate()
    await held.wait()
    await world.kill()
    held.release()
    world.kie.finish_after = 0.2
    await world.start()
    await world.telegram.wait_for_call("sendVideo", timeout=10)
    await asyncio.sleep(0.5)
    # Nothing had been paid for: the restart submitted it, once.
    assert len(world.kie.creates()) == 1 and len(world.videos()) == 1


async def test_killed_after_a_kie_create_asks_before_paying_again(world: World) -> None:
    await kill_during_the_create(world, world.kie, "createTask")
    world.kie.finish_after = 0.2
    await world.start()
    notice = await world.telegram.wait_for_call(
        "editMessageText", lambda c: "may not have started" in c.params["text"], timeout=10
    )
    assert len(world.kie.creates()) == 1  # no second paid create without the user
    markup = notice[-1].params["reply_markup"]["inline_keyboard"]
    retry = next(b["callback_data"] for row in markup for b in row if "Retry" in b["text"])
    message = world.telegram.messages[(world.user.id, notice[-1].params["message_id"])]
    world.telegram.tap(world.user, message, retry)
    await world.telegram.wait_for_call("sendVideo", timeout=10)
    await asyncio.sleep(0.5)
    assert len(world.kie.creates()) == 2 and len(world.videos()) == 1
    # Two presses (Generate, then Retry after the honest notice), two paid creates.
    MONEY.record(
        "kie killed mid-create polling",
        presses=2,
        paid_creates=2,
        undelivered=1,
        identifiable=False,
    )


async def test_killed_during_a_kie_create_its_callback_adopts_the_task(world: World) -> None:
    with_callbacks(world)
    photo = await kill_during_the_create(world, world.kie, "createTask")
    await world.start()
    await world.telegram.wait_for_call(
        "editMessageText", lambda c: "may not have started" in c.params["text"], timeout=10
    )
    (task,) = world.kie.tasks.values()
    await world.kie.complete(task.task_id)  # kie calls our task's URL with its taskId
    await world.telegram.wait_for_call(
        "sendMessage", lambda c: "did start" in c.params["text"], timeout=10
    )
    video = (await world.telegram.wait_for_call("sendVideo", timeout=10))[0]
    assert video.params["reply_parameters"]["message_id"] == photo["message_id"]
    await asyncio.sleep(0.5)
    assert len(world.kie.creates()) == 1 and len(world.videos()) == 1
    MONEY.record(
        "kie killed mid-create callbacks",
        presses=1,
        paid_creates=1,
        undelivered=0,
        identifiable=True,
    )


async def test_killed_during_a_tuzi_create_is_never_sent_again(world: World) -> None:
    world.env["DEFAULT_MODEL"] = "tuzi:kling-v2-6"
    await kill_during_the_create(world, world.tuzi, "create")
    await world.start()
    await world.telegram.wait_for_call(
        "editMessageText", lambda c: "may not have started" in c.params["text"], timeout=10
    )
    await asyncio.sleep(0.5)
    # tu-zi cannot be asked by our id: nothing is sent again without the user.
    assert len(world.tuzi.creates()) == 1 and not world.videos()
    MONEY.record(
        "tuzi killed mid-create", presses=1, paid_creates=1, undelivered=1, identifiable=False
    )


@pytest.mark.parametrize("callbacks", [False, True], ids=["polling", "callbacks"])
async def test_killed_after_a_kling_create_finds_the_task(world: World, callbacks: bool) -> None:
    world.env["DEFAULT_MODEL"] = "kling:kling-v2-6"
    if callbacks:
        with_callbacks(world)
    await kill_during_the_create(world, world.kling, "create")
    (task,) = world.kling.tasks.values()
    await world.start()
    await asyncio.sleep(0.5)
    await world.kling.complete(task.task_id)
    await world.telegram.wait_for_call("sendVideo", timeout=10)
    await asyncio.sleep(0.5)
    # Found by external_task_id: the one paid task is the one delivered.
    assert len(world.kling.creates()) == 1 and len(world.videos()) == 1
    MONEY.record(
        f"kling killed mid-create {'callbacks' if callbacks else 'polling'}",
        presses=1,
        paid_creates=len(world.kling.creates()),
        undelivered=1 - len(world.videos()),
        identifiable=True,
    )


async def test_killed_after_completion_before_the_upload(world: World) -> None:
    world.kie.finish_after = 0.2
    await world.start()
    held = world.kie.hold("result")  # the bot is fetching the finished video
    await world.generate()
    await held.wait()
    await world.kill()
    held.release()
    await world.start()
    video = (await world.telegram.wait_for_call("sendVideo", timeout=10))[0]
    assert video.files["video"] == world.kie.video
    await asyncio.sleep(0.5)
    assert len(world.kie.creates()) == 1 and len(world.videos()) == 1


async def test_killed_during_delivery_never_sends_two_videos(world: World) -> None:
    world.kie.finish_after = 0.2
    await world.start()
    held = world.telegram.hold("sendVideo", after=True)  # Telegram got it; no answer
    await world.generate()
    await held.wait()
    await world.kill()
    held.release()
    await world.start()
    link = await world.telegram.wait_for_call(
        "sendMessage", lambda c: "restarted while sending" in c.params["text"], timeout=10
    )
    assert "/results/" in link[0].params["text"]
    await asyncio.sleep(0.5)
    assert len(world.videos()) == 1 and len(world.kie.creates()) == 1


async def test_sigterm_finishes_a_create_in_flight(world: World) -> None:
    await world.start()
    held = world.kie.hold("createTask", after=True)
    await world.generate()
    await held.wait()
    stopping = asyncio.create_task(world.stop())  # SIGTERM while kie is answering
    await asyncio.sleep(0.5)
    held.release()
    await stopping
    assert world.process is not None and world.process.returncode == 0
    (task,) = world.kie.tasks.values()
    await world.kie.complete(task.task_id)
    await world.start()
    await world.telegram.wait_for_call("sendVideo", timeout=15)
    await asyncio.sleep(0.5)
    # The create under way was recorded before the bot stopped: no second one.
    assert len(world.kie.creates()) == 1 and len(world.videos()) == 1
