"""End-to-end harness: the real bot against loopback fakes of Telegram and kie.ai."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.app import KlingBot
from bot.config import Settings
from storage.models import GenerationOptions, Task, TaskState
from tests.fakes.kie import FakeKie
from tests.fakes.kling import FakeKling
from tests.fakes.server import serve
from tests.fakes.telegram import Call, FakeTelegram, FakeUser

# PTB 22 warns about its timedelta migration when it builds RetryAfter; opt in to the new API.
os.environ.setdefault("PTB_TIMEDELTA", "true")

TOKEN = "123456789:AAFakeTokenForTests_abcdefghijklmnop"
KIE_KEY = "kie-test-key-0123456789"
KLING_ACCESS = "kling-access-key-0123"
KLING_SECRET = "kling-secret-key-0123456789abcdef0123456789"
TUZI_KEY = "tuzi-test-key-0123456789"


def jpeg(width: int = 1280, height: int = 720, color: str = "teal") -> bytes:
    """A real JPEG image."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG")
    return out.getvalue()


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Harness:
    """A running bot, its fakes, and shortcuts for what users do."""

    telegram: FakeTelegram
    kie: FakeKie
    settings: Settings
    kling: FakeKling | None = None
    tuzi: FakeKling | None = None
    bot_options: dict[str, Any] = field(default_factory=dict)
    bot: KlingBot | None = None
    user: FakeUser = field(default_factory=lambda: FakeUser(id=1001, first_name="Ann"))

    async def start(self) -> KlingBot:
        options = {"album_wait": 0.3, **self.bot_options}
        self.bot = KlingBot(self.settings, **options)
        await self.bot.start()
        return self.bot

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.stop()
            self.bot = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def services(self) -> Any:
        assert self.bot is not None and self.bot.services is not None
        return self.bot.services

    async def reply_to(
        self, message: dict[str, Any], *, after: int = 0, timeout: float = 5.0
    ) -> Call:
        """The bot's next sendMessage replying to the user's `message`."""
        chat_id, message_id = message["chat"]["id"], message["message_id"]
        calls = await self.telegram.wait_for_call(
            "sendMessage",
            lambda c: c.ok and int(c.params["chat_id"]) == chat_id and replied_to(c) == message_id,
            count=after + 1,
            timeout=timeout,
        )
        return calls[after]

    async def draft_for(self, photo: dict[str, Any]) -> dict[str, Any]:
        """The draft message the bot sent for `photo`, as it is now."""
        call = await self.reply_to(photo)
        return self.message(call)

    def message(self, call: Call) -> dict[str, Any]:
        result = call.result
        assert isinstance(result, dict)
        return self.telegram.messages[(result["chat"]["id"], result["message_id"])]

    def current(self, message: dict[str, Any]) -> dict[str, Any]:
        return self.telegram.messages[(message["chat"]["id"], message["message_id"])]

    async def wait_task(self, predicate: Callable[[Task], bool], timeout: float = 5.0) -> Task:
        """Wait until some task satisfies `predicate`."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for task in await self.services.tasks.in_states(*TaskState):
                        if predicate(task):
                            return task
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError("no task matched in time") from None


async def until(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Wait until `condition()` holds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the condition is another party's state
            await asyncio.sleep(0.01)


def replied_to(call: Call) -> int | None:
    """The message a bot's call replies to, if any."""
    reply = call.params.get("reply_parameters")
    if isinstance(reply, dict):
        return int(reply["message_id"])
    value = call.params.get("reply_to_message_id")
    return int(value) if value is not None else None


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """Button text → callback_data of a message's inline keyboard."""
    markup = message.get("reply_markup") or {}
    return {
        button["text"]: button["callback_data"]
        for row in markup.get("inline_keyboard", [])
        for button in row
    }


def button(message: dict[str, Any], fragment: str) -> str:
    """The callback_data of the one button whose text contains `fragment`."""
    found = [data for text, data in buttons(message).items() if fragment in text]
    assert len(found) == 1, f"{fragment!r} in {list(buttons(message))}"
    return found[0]


PHOTO = jpeg()


async def generate(h: Harness, caption: str = "the cat slowly blinks") -> dict[str, Any]:
    """Send a photo, tap Generate on its draft, and return the photo message."""
    photo = h.telegram.send_photo(h.user, PHOTO, caption)
    draft = await h.draft_for(photo)
    h.telegram.tap(h.user, draft, button(draft, "Generate"))
    return photo


@pytest.fixture
def make_harness(tmp_path: Path) -> Callable[..., Any]:
    """Build a harness; keyword arguments override settings."""

    def settings(telegram_url: str, kie_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "telegram_bot_token": TOKEN,
            "telegram_api_url": telegram_url,
            "database_path": tmp_path / "data" / "bot.sqlite3",
            "kie_api_url": kie_url,
            "kie_upload_url": kie_url,
            "http_host": "127.0.0.1",
            "http_port": free_port(),
            "poll_interval": 0.05,
            "task_timeout": 30.0,
        }
        values.update(overrides)
        if values.pop("callbacks", False):
            values["public_url"] = f"http://127.0.0.1:{values['http_port']}"
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return settings


@pytest.fixture
async def harness(make_harness: Callable[..., Settings]) -> AsyncIterator[Callable[..., Any]]:
    """`async with harness(**settings) as h:` runs the bot against fresh fakes.

    `backends` names the providers to configure (each gets its own loopback fake).
    """

    @asynccontextmanager
    async def run(
        start: bool = True,
        kie_hmac: str | None = None,
        backends: tuple[str, ...] = ("kie",),
        provider_timeout: float | None = None,
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        # In webhook mode the bot listens on plain HTTP on loopback: see FakeTelegram.
        webhook = bool(overrides.get("telegram_webhook"))
        telegram = FakeTelegram(token=TOKEN, allow_loopback_http_webhook=webhook)
        async with AsyncExitStack() as stack:
            kie = await stack.enter_async_context(FakeKie(api_key=KIE_KEY, hmac_key=kie_hmac))
            tg_url = await stack.enter_async_context(serve(telegram.app))
            kie_url = await stack.enter_async_context(serve(kie.app))
            kling = tuzi = None
            if "kie" in backends:
                overrides["kie_api_key"] = KIE_KEY
            if kie_hmac:
                overrides["kie_webhook_hmac_key"] = kie_hmac
            if "kling" in backends:
                kling = FakeKling(access_key=KLING_ACCESS, secret_key=KLING_SECRET)
                await stack.enter_async_context(kling)
                overrides["kling_api_url"] = await stack.enter_async_context(serve(kling.app))
                overrides["kling_access_key"] = KLING_ACCESS
                overrides["kling_secret_key"] = KLING_SECRET
            if "tuzi" in backends:
                tuzi = FakeKling(api_key=TUZI_KEY, prefix="/kling", proxy_rules=True)
                await stack.enter_async_context(tuzi)
                root = await stack.enter_async_context(serve(tuzi.app))
                overrides["tuzi_api_url"] = f"{root}/kling"
                overrides["tuzi_api_key"] = TUZI_KEY
            h = Harness(telegram, kie, make_harness(tg_url, kie_url, **overrides), kling, tuzi)
            if provider_timeout is not None:
                h.bot_options["provider_timeout"] = httpx.Timeout(provider_timeout)
            if start:
                await h.start()
            try:
                yield h
            finally:
                await h.stop()
                telegram.shutdown()

    yield run


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the money figures the tests recorded: paid creates per press, lost videos."""
    from tests.ledger import MONEY

    lines = MONEY.lines()
    if lines:
        terminalreporter.section("money: paid creates per Generate press, undelivered videos")
        for line in lines:
            terminalreporter.write_line(line)


async def choose_model(h: Harness, draft: dict[str, Any], backend: str, label: str) -> None:
    """Open the draft's model picker (unless open), go to `backend`'s tab, tap model `label`."""
    edits = len(h.telegram.calls_of("editMessageReplyMarkup"))
    shown = buttons(h.current(draft))
    picker = [text for text in shown if text.startswith("🎞") and text.endswith("▾")]
    if picker:
        h.telegram.tap(h.user, h.current(draft), shown[picker[0]])
        edits += 1
        await h.telegram.wait_for_call("editMessageReplyMarkup", count=edits)
    menu = buttons(h.current(draft))
    if backend in menu:  # another backend's tab ("✅ " marks the one shown)
        h.telegram.tap(h.user, h.current(draft), menu[backend])
        await h.telegram.wait_for_call("editMessageReplyMarkup", count=edits + 1)
    shown = buttons(h.current(draft))
    exact = shown.get(label) or shown.get(f"✅ {label}")
    h.telegram.tap(h.user, h.current(draft), exact or button(h.current(draft), label))


def task_row(options: GenerationOptions, **fields: Any) -> Task:
    """A task as the database holds it, just claimed; `fields` override any column."""
    values: dict[str, Any] = {
        "id": 3,
        "draft_id": 7,
        "user_id": 1,
        "chat_id": 1,
        "source_message_id": 1,
        "status_message_id": 2,
        "image_file_id": "f0",
        "prompt": "the tide comes in",
        "options": options,
        "lang": "en",
        "state": TaskState.SUBMITTING,
        "provider_task_id": None,
        "callback_secret": "s" * 32,
        "result_url": None,
        "error": None,
        "error_detail": None,
        "polls": 0,
        "next_poll_at": None,
        "created_at": 0.0,
        "submitted_at": None,
        "finished_at": None,
        "delivered_at": None,
        "updated_at": 0.0,
    }
    values.update(fields)
    return Task(**values)
