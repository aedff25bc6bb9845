"""sendVideo through the bot's request layer, against an httpx mock transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.chat.limiter import FloodLimiter
from bot.chat.upload import UPLOAD_TIMEOUT, VideoUploader
from bot.engine.gate import local_gates

TOKEN = "123:SECRET-token-abcdefghijklmnopqrst"
ME = {"id": 123, "is_bot": True, "first_name": "Kling", "username": "kling_test_bot"}
SENT = {
    "message_id": 8,
    "date": 0,
    "chat": {"id": 42, "type": "private"},
    "video": {"file_id": "v", "file_unique_id": "v", "width": 1, "height": 1, "duration": 5},
}
Handler = Callable[[httpx.Request], httpx.Response]


@asynccontextmanager
async def uploader(handler: Handler) -> AsyncIterator[tuple[VideoUploader, list[httpx.Request]]]:
    """An uploader over a bot with the application's rate limiter; sendVideo goes to `handler`."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/getMe"):
            return httpx.Response(200, json={"ok": True, "result": ME})
        request.read()
        seen.append(request)
        return handler(request)

    request = HTTPXRequest(httpx_kwargs={"transport": httpx.MockTransport(record)})
    limiter = FloodLimiter(local_gates, max_retries=3)  # as build_application sets it up
    bot: ExtBot[Any] = ExtBot(
        TOKEN, base_url="https://tg.test/bot", request=request, rate_limiter=limiter
    )
    async with bot:
        yield VideoUploader(bot), seen


async def send(sender: VideoUploader, path: Path) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="t:1:again")]])
    await sender.send_video(
        42, path, caption="<b>hi</b>", reply_to=7, reply_markup=markup, filename="kling-1.mp4"
    )


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "result": SENT})


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300_000))
    return path


def field(body: bytes, name: str) -> str:
    """One form field of a multipart body."""
    head = f'name="{name}"\r\n\r\n'.encode()
    start = body.index(head) + len(head)
    return body[start : body.index(b"\r\n--", start)].decode()


async def test_sends_the_file_and_fields(video: Path) -> None:
    async with uploader(ok) as (sender, seen):
        await send(sender, video)
    (request,) = seen
    assert str(request.url) == f"https://tg.test/bot{TOKEN}/sendVideo"
    body = request.content
    assert video.read_bytes() in body
    assert b'filename="kling-1.mp4"' in body and b"Content-Type: video/mp4" in body
    assert field(body, "chat_id") == "42" and field(body, "parse_mode") == "HTML"
    assert field(body, "caption") == "<b>hi</b>"
    assert field(body, "supports_streaming") == "true"
    reply = json.loads(field(body, "reply_parameters"))
    assert reply == {"message_id": 7, "allow_sending_without_reply": True}
    assert "t:1:again" in field(body, "reply_markup")


async def test_an_upload_has_minutes_not_the_bots_seconds(video: Path) -> None:
    async with uploader(ok) as (sender, seen):
        await send(sender, video)
    timeout = seen[0].extensions["timeout"]
    assert timeout["write"] == timeout["read"] == UPLOAD_TIMEOUT


async def test_flood_control_is_waited_out_and_the_file_sent_whole_again(
    video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    sleep = asyncio.sleep

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)
        await sleep(0)

    monkeypatch.setattr(asyncio, "sleep", no_wait)
    flood = {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    answers = [httpx.Response(429, json=flood)]
    async with uploader(lambda request: answers.pop(0) if answers else ok(request)) as (
        sender,
        seen,
    ):
        await send(sender, video)
    assert len(seen) == 2 and 3 <= max(waits) < 4  # the bot's rate limiter waited
    assert all(video.read_bytes() in request.content for request in seen)


@pytest.mark.parametrize(
    ("status", "error"), [(403, Forbidden), (400, BadRequest), (502, NetworkError)]
)
async def test_errors_are_telegram_errors(video: Path, status: int, error: type[Exception]) -> None:
    body = {"ok": False, "error_code": status, "description": "Forbidden: bot was blocked"}
    async with uploader(lambda request: httpx.Response(status, json=body)) as (sender, _):
        with pytest.raises(error):
            await send(sender, video)
