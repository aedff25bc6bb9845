"""The streaming sendVideo against an httpx mock transport."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError

from bot.engine import upload
from bot.engine.upload import VideoUploader

TOKEN = "123:SECRET-token-abcdefghijklmnopqrst"


def uploader(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[VideoUploader, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return VideoUploader("https://tg.test", TOKEN, client), seen


async def send(sender: VideoUploader, path: Path) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="t:1:again")]])
    await sender.send_video(
        42, path, caption="<b>hi</b>", reply_to=7, reply_markup=markup, filename="kling-1.mp4"
    )


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(300_000))
    return path


async def test_sends_the_file_and_fields(video: Path) -> None:
    sender, seen = uploader(lambda r: httpx.Response(200, json={"ok": True, "result": {}}))
    await send(sender, video)
    (request,) = seen
    assert str(request.url) == f"https://tg.test/bot{TOKEN}/sendVideo"
    body = request.content
    assert video.read_bytes() in body
    for part in (b'name="supports_streaming"', b'"message_id": 7', b"t:1:again", b"kling-1.mp4"):
        assert part in body


async def test_flood_control_is_waited_out(video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def no_sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(upload.asyncio, "sleep", no_sleep)
    answers = [
        httpx.Response(
            429,
            json={
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests",
                "parameters": {"retry_after": 3},
            },
        ),
        httpx.Response(200, json={"ok": True, "result": {}}),
    ]
    sender, seen = uploader(lambda r: answers.pop(0))
    await send(sender, video)
    assert waits == [3.0] and len(seen) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(403, Forbidden), (400, BadRequest), (502, NetworkError)]
)
async def test_errors_map_to_telegram_errors(
    video: Path, status: int, error: type[Exception]
) -> None:
    body = {
        "ok": False,
        "error_code": status,
        "description": "Forbidden: bot was blocked by the user",
    }
    sender, _ = uploader(lambda r: httpx.Response(status, json=body))
    with pytest.raises(error):
        await send(sender, video)


async def test_transport_errors_never_show_the_token(video: Path) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    sender, _ = uploader(fail)
    with pytest.raises(NetworkError) as caught:
        await send(sender, video)
    assert TOKEN not in str(caught.value) and caught.value.__cause__ is None
