"""Tests of the fake Telegram Bot API, driven by real python-telegram-bot clients."""

from __future__ import annotations

import asyncio
import datetime as dtm
import io
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image
from starlette.types import Receive, Scope, Send
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.conftest import until
from tests.fakes.server import serve
from tests.fakes.telegram import FakeTelegram, FakeUser, methods

TOKEN = "123456:TEST-TOKEN"
ANN = FakeUser(7, "Ann")
KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Yes", callback_data="yes"),
            InlineKeyboardButton("No", callback_data="no"),
        ]
    ]
)


# One loopback server for the whole module keeps the file fast; each test gets a fresh fake.
pytestmark = pytest.mark.asyncio(loop_scope="module")


class _Switch:
    """An ASGI app that forwards to the current test's fake."""

    def __init__(self) -> None:
        self.target = FakeTelegram(TOKEN)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.target.app(scope, receive, send)


@pytest.fixture(autouse=True)
def _timedelta_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    # PTB 22 warns when durations are read as ints; warnings are errors in this suite.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram(TOKEN)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[tuple[str, _Switch]]:
    switch = _Switch()
    async with serve(switch) as url:
        yield url, switch


@pytest_asyncio.fixture(loop_scope="module")
async def root(server: tuple[str, _Switch], fake: FakeTelegram) -> str:
    url, switch = server
    switch.target = fake
    return url


@pytest_asyncio.fixture(loop_scope="module")
async def bot(root: str) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=f"{root}/bot", base_file_url=f"{root}/file/bot") as client:
        yield client


@pytest_asyncio.fixture(loop_scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def server_errors(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """What uvicorn and asyncio log at WARNING or above during the test."""
    records: list[logging.LogRecord] = []
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)

        def handle(record: logging.LogRecord, original: Any = logger.handle) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record)
            original(record)

        # Patched on the logger itself: uvicorn's dictConfig drops handlers added to it.
        monkeypatch.setattr(logger, "handle", handle)
    return records


def jpeg(width: int, height: int, color: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_get_me_routing_and_http_errors(
    fake: FakeTelegram, root: str, bot: Bot, http: httpx.AsyncClient
) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "kling_test_bot")

    wrong = await http.post(f"{root}/bot999:WRONG/getMe")
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    unknown = await http.post(f"{root}/bot{TOKEN}/noSuchMethod")
    assert unknown.status_code == 404
    assert unknown.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    upper = await http.get(f"{root}/bot{TOKEN}/GETME")
    assert upper.json()["result"]["username"] == "kling_test_bot"

    assert [(c.method, c.status) for c in fake.calls] == [
        ("getMe", 200),  # Bot.initialize
        ("getMe", 200),
        ("getMe", 401),
        ("noSuchMethod", 404),
        ("getMe", 200),
    ]


async def test_form_json_and_query_params_are_decoded(
    fake: FakeTelegram, root: str, http: httpx.AsyncClient
) -> None:
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "1"}]]}
    url = f"{root}/bot{TOKEN}/sendMessage"
    form = {"chat_id": "42", "text": "123", "reply_markup": json.dumps(markup)}
    await http.post(url, data={**form, "disable_notification": "true"})
    await http.post(url, json={"chat_id": 43, "text": "true", "reply_markup": markup})
    await http.get(url, params={"chat_id": "-1001234567890", "text": "[1]"})

    first, second, third = (call.params for call in fake.calls_of("sendMessage"))
    assert first == {
        "chat_id": 42,
        "text": "123",
        "reply_markup": markup,
        "disable_notification": True,
    }
    assert second == {"chat_id": 43, "text": "true", "reply_markup": markup}
    assert third == {"chat_id": -1001234567890, "text": "[1]"}
    assert fake.messages[(42, 1)]["reply_markup"] == markup
    assert fake.messages[(-1001234567890, 1)]["chat"]["type"] == "supergroup"


async def test_send_edit_and_delete_with_inline_keyboard(fake: FakeTelegram, bot: Bot) -> None:
    incoming = fake.send_text(ANN, "hello")
    reply = ReplyParameters(incoming["message_id"])
    sent = await bot.send_message(7, "Pick", reply_markup=KEYBOARD, reply_parameters=reply)

    assert sent.message_id == incoming["message_id"] + 1
    assert sent.from_user is not None and sent.from_user.username == "kling_test_bot"
    assert sent.chat.type == "private" and sent.chat.first_name == "Ann"
    assert sent.reply_to_message is not None and sent.reply_to_message.text == "hello"
    assert sent.reply_markup == KEYBOARD
    key = (7, sent.message_id)
    assert fake.messages[key]["reply_markup"] == KEYBOARD.to_dict()
    assert fake.calls_of("sendMessage")[0].params["reply_parameters"] == {
        "message_id": incoming["message_id"]
    }

    edited = await bot.edit_message_text("Pick again", 7, sent.message_id, reply_markup=KEYBOARD)
    assert isinstance(edited, Message)
    assert edited.text == "Pick again" and edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("Pick again", 7, sent.message_id, reply_markup=KEYBOARD)

    await bot.edit_message_text("Thanks", 7, sent.message_id)
    assert fake.messages[key]["text"] == "Thanks"
    assert "reply_markup" not in fake.messages[key]
    restored = await bot.edit_message_reply_markup(7, sent.message_id, reply_markup=KEYBOARD)
    assert isinstance(restored, Message) and restored.reply_markup == KEYBOARD

    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("x", 7, 999)
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text("x", 7, incoming["message_id"])
    with pytest.raises(BadRequest, match=r"(?i)no caption in the message"):
        await bot.edit_message_caption(7, sent.message_id, caption="x")

    assert await bot.delete_message(7, sent.message_id) is True
    assert key not in fake.messages
    with pytest.raises(BadRequest, match=r"(?i)message to delete not found"):
        await bot.delete_message(7, sent.message_id)


async def test_html_parse_mode_becomes_text_and_entities(fake: FakeTelegram, bot: Bot) -> None:
    source = '<b>Hi</b> &lt;you&gt; <a href="https://x.y/?a=1&amp;b=2">link</a> 🎬<i>é</i>'
    sent = await bot.send_message(7, source, parse_mode="HTML")

    assert sent.text == "Hi <you> link 🎬é"
    assert [(e.type, e.offset, e.length, e.url) for e in sent.entities] == [
        ("bold", 0, 2, None),
        ("text_link", 9, 4, "https://x.y/?a=1&b=2"),
        ("italic", 16, 1, None),  # the emoji takes two UTF-16 code units
    ]
    assert fake.calls_of("sendMessage")[0].params["text"] == source
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(7, "1 < 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r'(?i)unsupported start tag "blink"'):
        await bot.send_message(7, "<blink>x</blink>", parse_mode="HTML")


async def test_parse_mode_must_be_one_telegram_knows(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="Unsupported parse_mode"):
        await bot.send_message(7, "<b>x</b>", parse_mode="Textile")
    with pytest.raises(BadRequest, match="Unsupported parse_mode"):
        await bot.send_photo(7, jpeg(10, 10), caption="x", parse_mode="XML")
    assert fake.calls_of("sendMessage")[0].error == "Bad Request: unsupported parse_mode"
    assert fake.messages == {}
    # Any case; "none" and "" mean none; an empty text is refused for being empty.
    assert (await bot.send_message(7, "<b>a</b>", parse_mode="html")).text == "a"
    assert (await bot.send_message(7, "<b>a</b>", parse_mode="None")).text == "<b>a</b>"
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(7, "", parse_mode="Textile")
    # Markdown is accepted, not modelled: stored as sent.
    assert (await bot.send_message(7, "*a*", parse_mode="MarkdownV2")).text == "*a*"


async def test_inline_buttons_need_exactly_one_action(
    fake: FakeTelegram, root: str, http: httpx.AsyncClient
) -> None:
    async def send(*buttons: dict[str, Any]) -> httpx.Response:
        markup = {"inline_keyboard": [list(buttons)]}
        body = {"chat_id": 7, "text": "pick", "reply_markup": markup}
        return await http.post(f"{root}/bot{TOKEN}/sendMessage", json=body)

    cant = "Bad Request: can't parse inline keyboard button: "
    refused = {
        "no action": ({"text": "A"}, f"{cant}Text buttons are unallowed in the inline keyboard"),
        "empty data": (
            {"text": "A", "callback_data": ""},
            f"{cant}Text buttons are unallowed in the inline keyboard",
        ),
        "two actions": (
            {"text": "A", "callback_data": "a", "url": "https://x.y"},
            f"{cant}exactly one of the optional fields must be used (found url, callback_data)",
        ),
        "no text": ({"callback_data": "a"}, f'{cant}Can\'t find field "text"'),
        "not an object": ("A", f"{cant}InlineKeyboardButton must be an Object"),
        "data too long": (
            {"text": "A", "callback_data": "é" * 33},
            "Bad Request: BUTTON_DATA_INVALID",
        ),
    }
    for case, (button, description) in refused.items():
        answer = await send({"text": "ok", "callback_data": "ok"}, button)
        assert (answer.status_code, answer.json()["description"]) == (400, description), case
    assert fake.messages == {}
    fine = [
        {"text": "A", "callback_data": "a"},
        {"text": "B", "url": "https://x.y"},
        {"text": "C", "switch_inline_query": ""},
        {"text": "D", "copy_text": {"text": "copied"}},
    ]
    assert (await send(*fine)).status_code == 200


async def test_a_reply_needs_its_message_unless_allowed_without(
    fake: FakeTelegram, bot: Bot
) -> None:
    incoming = fake.send_text(ANN, "hello")
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(7, "x", reply_parameters=ReplyParameters(999))
    assert fake.calls_of("sendMessage")[0].error == "Bad Request: message to be replied not found"
    alone = await bot.send_message(
        7, "x", reply_parameters=ReplyParameters(999, allow_sending_without_reply=True)
    )
    assert alone.reply_to_message is None
    legacy = await bot.send_message(
        7, "y", reply_to_message_id=999, allow_sending_without_reply=True
    )
    assert legacy.reply_to_message is None
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(7, "y", reply_to_message_id=999)
    # The message must be in this chat, and not deleted.
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(8, "z", reply_parameters=ReplyParameters(incoming["message_id"]))
    sent = await bot.send_message(7, "z", reply_parameters=ReplyParameters(incoming["message_id"]))
    assert sent.reply_to_message is not None and sent.reply_to_message.text == "hello"
    await bot.delete_message(7, sent.message_id)
    with pytest.raises(BadRequest, match="Message to be replied not found"):
        await bot.send_message(7, "z", reply_parameters=ReplyParameters(sent.message_id))


async def test_set_webhook_wants_https_on_a_public_address_and_a_valid_secret(
    fake: FakeTelegram, bot: Bot
) -> None:
    bad = "Bad Request: bad webhook: "
    refused = {
        "http://example.com/hook": f"{bad}An HTTPS URL must be provided for webhook",
        "https://example.com:8080/hook": (
            f"{bad}Webhook can be set up only on ports 80, 88, 443 or 8443"
        ),
        "https://127.0.0.1:8443/hook": f"{bad}IP address 127.0.0.1 is reserved",
        "https://localhost/hook": f"{bad}IP address 127.0.0.1 is reserved",
        "https://[2001:db8::1]/hook": f"{bad}IPv6-only addresses are not allowed",
        "ftp://example.com/hook": "Bad Request: invalid webhook URL specified",
        "http://127.0.0.1:8000/telegram": f"{bad}An HTTPS URL must be provided for webhook",
    }
    await bot.set_webhook("https://example.com/old")
    for url, description in refused.items():
        with pytest.raises(BadRequest):
            await bot.set_webhook(url)
        assert fake.calls_of("setWebhook")[-1].error == description, url
    assert fake.webhook_url == ""  # the old webhook is gone, as in Telegram
    for token, description in [("a" * 257, "is too long"), ("no spaces", "contains unallowed")]:
        with pytest.raises(BadRequest, match=f"Secret token {description}"):
            await bot.set_webhook("https://example.com/hook", secret_token=token)
    assert await bot.set_webhook("example.com:8443/hook", secret_token="A-z_09" * 42)
    assert fake.webhook_url == "example.com:8443/hook"

    fake.allow_loopback_http_webhook = True
    assert await bot.set_webhook("http://127.0.0.1:8000/telegram", secret_token="s")
    assert await bot.set_webhook("http://[::1]:8000/telegram")
    with pytest.raises(BadRequest, match=r"(?i)an https url must be provided"):
        await bot.set_webhook("http://example.com/hook")


async def test_limits_and_callback_answers(fake: FakeTelegram, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(7, "x" * 4097)
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(7, " ")
    video = fake.add_file(b"mp4", ".mp4")["file_id"]
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_video(7, video, caption="c" * 1025)
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("B", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(7, "x", reply_markup=too_long_data)
    assert fake.messages == {}

    sent = await bot.send_message(7, "x" * 4096, reply_markup=KEYBOARD)
    query_id = fake.tap(ANN, sent.to_dict(), "no")
    with pytest.raises(BadRequest):
        await bot.answer_callback_query(query_id, text="t" * 201)
    assert fake.answered(query_id) is None
    assert await bot.answer_callback_query(query_id, text="Noted") is True
    assert fake.answered(query_id) == {"callback_query_id": query_id, "text": "Noted"}
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(AssertionError, match="no button with callback_data 'maybe'"):
        fake.tap(ANN, sent.to_dict(), "maybe")


async def test_faults_map_to_ptb_exceptions(fake: FakeTelegram, bot: Bot) -> None:
    fake.blocked_users.add(9)
    with pytest.raises(Forbidden, match=r"(?i)bot was blocked by the user"):
        await bot.send_message(9, "hi")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(9, ChatAction.TYPING)

    fake.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(7, "hi")
    assert flood.value.retry_after == dtm.timedelta(seconds=7)
    assert (await bot.send_message(7, "hi")).text == "hi"

    fake.fail_next("GETFILE", times=2)
    for _ in range(2):
        with pytest.raises(BadRequest, match=r"(?i)test fault"):
            await bot.get_file("nope")
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("nope")

    attempts = [(c.method, c.params["chat_id"], c.status) for c in fake.calls_of("sendMessage")]
    assert attempts == [("sendMessage", 9, 403), ("sendMessage", 7, 429), ("sendMessage", 7, 200)]
    assert [c.error for c in fake.calls_of("getFile")] == [
        "Bad Request: test fault",
        "Bad Request: test fault",
        "Bad Request: invalid file_id",
    ]


async def test_photo_from_user_downloads_exact_bytes(
    fake: FakeTelegram, root: str, bot: Bot, http: httpx.AsyncClient
) -> None:
    image = jpeg(640, 480)
    fake.send_photo(ANN, image, "make it move", width=640, height=480)

    [update] = await bot.get_updates(timeout=0)
    message = update.message
    assert message is not None and message.caption == "make it move"
    sizes = message.photo
    assert [(p.width, p.height) for p in sizes] == [(90, 68), (320, 240), (640, 480)]
    largest = await bot.get_file(sizes[-1].file_id)
    assert bytes(await largest.download_as_bytearray()) == image
    small = await bot.get_file(sizes[0].file_id)
    thumb = bytes(await small.download_as_bytearray())
    assert thumb != image and Image.open(io.BytesIO(thumb)).size == (90, 68)
    assert largest.file_path is not None and small.file_path is not None
    assert largest.file_path.startswith(f"{root}/file/bot{TOKEN}/photos/file_")
    prefix = f"{root}/file/bot{TOKEN}/"
    assert fake.file_downloads == [
        largest.file_path.removeprefix(prefix),
        small.file_path.removeprefix(prefix),
    ]

    missing = await http.get(f"{root}/file/bot{TOKEN}/photos/file_999.jpg")
    assert missing.status_code == 404
    with pytest.raises(BadRequest, match=r"(?i)invalid file_id"):
        await bot.get_file("unknown")


async def test_send_video_upload_keeps_exact_bytes(
    fake: FakeTelegram, bot: Bot, tmp_path: Path
) -> None:
    data = os.urandom(3000) + b"\r\n--not-a-boundary\r\n\r\n" + os.urandom(3000)
    path = tmp_path / "result.mp4"
    path.write_bytes(data)
    with path.open("rb") as video:
        sent = await bot.send_video(
            7, video, caption="Your video", width=720, height=1280, supports_streaming=True
        )

    call = fake.calls_of("sendVideo")[0]
    assert call.files["video"] == data
    assert call.params["chat_id"] == 7 and call.params["supports_streaming"] is True
    assert sent.caption == "Your video"
    assert sent.video is not None
    assert (sent.video.width, sent.video.height, sent.video.file_size) == (720, 1280, len(data))
    assert fake.messages[(7, sent.message_id)]["video"]["mime_type"] == "video/mp4"

    again = await bot.send_video(7, sent.video.file_id)
    assert again.video is not None and again.video.file_unique_id == sent.video.file_unique_id
    stored = await bot.get_file(sent.video.file_id)
    assert bytes(await stored.download_as_bytearray()) == data
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
        await bot.send_video(7, "not-a-known-file-id")


async def test_uploads_over_50_mb_and_broken_bodies_are_refused(
    fake: FakeTelegram, root: str, http: httpx.AsyncClient
) -> None:
    url = f"{root}/bot{TOKEN}/sendVideo"
    chunk = bytes(1024 * 1024)

    async def big_file() -> AsyncIterator[bytes]:
        for _ in range(51):
            yield chunk

    boundary = "fake-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="chat_id"\r\n\r\n7\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for part in big_file():
            yield part
        yield f"\r\n--{boundary}--\r\n".encode()

    content_type = {"content-type": f"multipart/form-data; boundary={boundary}"}
    # Streamed without a Content-Length: the fake reads it to the end, keeps none of it.
    too_big = await http.post(url, content=body(), headers=content_type)
    assert too_big.status_code == 413
    assert too_big.json()["description"] == "Request Entity Too Large"
    broken = await http.post(url, content=b"no parts here", headers=content_type)
    assert broken.status_code == 400
    not_json = await http.post(url, content=b"[1]", headers={"content-type": "application/json"})
    assert not_json.json()["description"] == "Bad Request: can't parse JSON object"
    assert fake.messages == {}


async def test_send_document_and_photo_uploads(fake: FakeTelegram, bot: Bot) -> None:
    document = await bot.send_document(7, b"report body", filename="report.txt", caption="log")
    assert document.document is not None
    assert (document.document.file_name, document.document.mime_type) == (
        "report.txt",
        "text/plain",
    )
    assert fake.calls_of("sendDocument")[0].files["document"] == b"report body"

    image = jpeg(400, 200, "blue")
    photo = await bot.send_photo(7, image, caption="<b>preview</b>", parse_mode="HTML")
    assert photo.caption == "preview" and photo.caption_entities[0].type == "bold"
    assert (photo.photo[-1].width, photo.photo[-1].height) == (400, 200)
    assert fake.calls_of("sendPhoto")[0].files["photo"] == image
    assert await bot.send_chat_action(7, ChatAction.UPLOAD_VIDEO) is True


async def test_user_message_kinds_parse_and_offsets(fake: FakeTelegram, bot: Bot) -> None:
    fake.send_text(ANN, "/start@kling_test_bot ref42")
    fake.send_sticker(ANN)
    fake.send_video(ANN)
    fake.send_voice(ANN)
    fake.send_animation(ANN)
    fake.send_document(ANN, b"%PDF", "a.pdf", "application/pdf")
    fake.send_text(FakeUser(8, "Bo"), "hi all", chat_id=-555)

    first_two = await bot.get_updates(limit=2, timeout=0)
    rest = await bot.get_updates(offset=first_two[-1].update_id + 1, timeout=0)
    assert len(first_two) == 2 and len(rest) == 5
    messages = [u.message for u in [*first_two, *rest] if u.message is not None]
    command, sticker, video, voice, animation, document, group = messages
    assert command.entities[0].type == "bot_command" and command.entities[0].length == 21
    assert sticker.sticker is not None and sticker.sticker.width == 512
    assert video.video is not None and voice.voice is not None
    assert animation.animation is not None and animation.document is not None
    assert document.document is not None and document.document.file_name == "a.pdf"
    assert group.chat.type == "group" and group.from_user is not None
    assert [m.message_id for m in messages[:6]] == [1, 2, 3, 4, 5, 6]

    assert await bot.get_updates(offset=rest[-1].update_id + 1, timeout=0) == ()
    assert fake.pending_updates == []


async def test_long_poll_wakes_on_update_and_times_out(
    fake: FakeTelegram, root: str, http: httpx.AsyncClient
) -> None:
    url = f"{root}/bot{TOKEN}/getUpdates"
    started = time.monotonic()
    empty = await http.post(url, data={"timeout": "0.2"})
    assert empty.json() == {"ok": True, "result": []}
    assert 0.15 < time.monotonic() - started < 0.6

    poll = asyncio.create_task(http.post(url, data={"timeout": "5"}))
    await fake.wait_for_call("getUpdates", count=2)
    started = time.monotonic()
    fake.send_text(ANN, "wake up")
    result = (await poll).json()["result"]
    assert time.monotonic() - started < 0.5
    assert [u["message"]["text"] for u in result] == ["wake up"]


async def test_a_newer_long_poll_ends_the_waiting_one_with_409(
    fake: FakeTelegram,
    root: str,
    bot: Bot,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As telegram-bot-api does (Client::abort_long_poll): one waiting getUpdates per bot, the
    newer wins; a getUpdates answered at once ends nothing; 409s come at most one per 3 s."""
    monkeypatch.setattr(methods, "CONFLICT_PAUSE", 0.4)
    url = f"{root}/bot{TOKEN}/getUpdates"
    first = asyncio.create_task(http.post(url, data={"timeout": "5"}))
    await fake.wait_for_call("getUpdates")
    second = asyncio.create_task(http.post(url, data={"timeout": "5"}))
    ended = await asyncio.wait_for(first, 1.0)
    assert ended.status_code == 409
    assert ended.json() == {
        "ok": False,
        "error_code": 409,
        "description": "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
    }
    # Answered at once (timeout 0): the waiting one goes on waiting, and gets the update.
    assert (await http.post(url, data={"timeout": "0"})).json() == {"ok": True, "result": []}
    await asyncio.sleep(0.1)
    assert not second.done()
    fake.send_text(ANN, "hi")
    assert [u["message"]["text"] for u in (await second).json()["result"]] == ["hi"]
    # Another 409 within the pause waits it out; PTB raises Conflict.
    fake.send_text(ANN, "confirm")  # nothing pending below: the next polls wait
    offset = max(u["update_id"] for u in fake.pending_updates) + 1
    await http.post(url, data={"timeout": "0", "offset": str(offset)})
    third = asyncio.create_task(bot.get_updates(offset=offset, timeout=dtm.timedelta(seconds=5)))
    await fake.wait_for_call("getUpdates", count=5)
    started = time.monotonic()
    fourth = asyncio.create_task(http.post(url, data={"timeout": "5", "offset": str(offset)}))
    with pytest.raises(Conflict, match="terminated by other getUpdates request"):
        await third
    assert time.monotonic() - started >= 0.3
    # setWebhook ends the waiting one too, in its own words.
    await bot.set_webhook("https://example.com/hook")
    webhooked = await fourth
    assert webhooked.status_code == 409
    assert webhooked.json()["description"] == "Conflict: terminated by setWebhook request"


async def test_server_shutdown_releases_long_poll_and_held_calls(
    http: httpx.AsyncClient, server_errors: list[logging.LogRecord]
) -> None:
    fake = FakeTelegram(TOKEN)
    held = fake.hold("sendMessage")
    answer = fake.hold("getFile", after=True)
    fake.delay("getMe", 30)
    file_id = fake.add_file(b"x")["file_id"]
    async with serve(fake.app) as root:
        api = f"{root}/bot{TOKEN}"
        poll = asyncio.create_task(http.post(f"{api}/getUpdates", data={"timeout": "30"}))
        pending = [
            asyncio.create_task(http.post(f"{api}/sendMessage", data={"chat_id": 7, "text": "x"})),
            asyncio.create_task(http.post(f"{api}/getFile", data={"file_id": file_id})),
            asyncio.create_task(http.post(f"{api}/getMe")),
        ]
        await fake.wait_for_call("getUpdates")
        await held.wait()
        await answer.wait()
        await fake.wait_for_call("getMe")
        await asyncio.sleep(0.03)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    assert (await poll).json() == {"ok": True, "result": []}
    unavailable = {"ok": False, "error_code": 503, "description": "Service Unavailable"}
    for response in [await task for task in pending]:
        assert (response.status_code, response.json()) == (503, unavailable)
    [send] = fake.calls_of("sendMessage")
    assert (send.status, send.error) == (503, "Service Unavailable") and fake.messages == {}
    assert fake.calls_of("getFile")[0].ok  # done, only its answer was lost
    assert server_errors == []


async def test_commands_webhook_and_wait_report(fake: FakeTelegram, bot: Bot) -> None:
    commands = [BotCommand("start", "Start"), BotCommand("help", "Help")]
    assert await bot.set_my_commands(commands, language_code="ru") is True
    assert await bot.get_my_commands(language_code="ru") == tuple(commands)
    assert await bot.get_my_commands() == ()
    assert fake.my_commands("ru") == [c.to_dict() for c in commands]
    with pytest.raises(BadRequest, match=r"(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start!", "x")])
    assert await bot.delete_my_commands(language_code="ru") is True
    assert fake.my_commands("ru") == []

    await bot.set_webhook("https://example.com/hook")
    assert (await bot.get_webhook_info()).url == "https://example.com/hook"
    with pytest.raises(Conflict):
        await bot.get_updates(timeout=0)
    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""

    with pytest.raises(
        AssertionError, match=r"(?s)waiting for 1 matching sendVideo.*getWebhookInfo"
    ):
        await fake.wait_for_call("sendVideo", timeout=0.05)


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("Welcome", reply_markup=KEYBOARD)


async def on_tap(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    await query.answer("Got it")
    await query.edit_message_text(f"You chose {query.data}")


async def test_application_polls_command_and_callback(fake: FakeTelegram, root: str) -> None:
    app: Application = (  # type: ignore[type-arg]
        ApplicationBuilder().token(TOKEN).base_url(f"{root}/bot").base_file_url(f"{root}/file/bot")
    ).build()
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CallbackQueryHandler(on_tap))
    bob = FakeUser(101, "Bob", "de")
    updater = app.updater
    assert updater is not None
    async with app:
        await app.start()
        await updater.start_polling(poll_interval=0, timeout=dtm.timedelta(seconds=1))
        try:
            fake.send_text(bob, "/start")
            [welcome] = await fake.wait_for_call("sendMessage")
            assert welcome.params["chat_id"] == 101
            assert welcome.result["text"] == "Welcome"

            query_id = fake.tap(bob, welcome.result, "yes")
            await fake.wait_for_call("editMessageText")
            assert fake.answered(query_id) == {"callback_query_id": query_id, "text": "Got it"}
            final = fake.messages[(101, welcome.result["message_id"])]
            assert final["text"] == "You chose yes" and "reply_markup" not in final
        finally:
            await updater.stop()
            await app.stop()

    assert fake.calls_of("deleteWebhook")
    assert fake.pending_updates == []  # the updater confirmed both updates on stop


async def test_hold_before_send_message_until_release(fake: FakeTelegram, bot: Bot) -> None:
    hold = fake.hold("SENDMESSAGE")
    sending = asyncio.create_task(bot.send_message(7, "hi"))
    await asyncio.wait_for(hold.arrived.wait(), 1)
    [call] = fake.calls_of("sendMessage")
    assert (call.status, call.error, call.ok) == (0, "held", False) and fake.messages == {}
    assert (hold.count, hold.waiting) == (1, 1)
    assert (await bot.get_me()).username == "kling_test_bot"  # nothing else waits
    hold.release()
    sent = await sending
    assert call.ok and call.result["message_id"] == sent.message_id
    assert fake.messages[(7, sent.message_id)]["text"] == "hi"
    assert (await bot.send_message(7, "again")).text == "again"
    assert hold.count == 1


async def test_held_calls_whose_client_leaves_end_quietly(
    fake: FakeTelegram, bot: Bot, server_errors: list[logging.LogRecord]
) -> None:
    before = fake.hold("getFile")
    after = fake.hold("sendVideo", after=True, times=1)
    baseline = len(asyncio.all_tasks())
    lookup = asyncio.create_task(bot.get_file("whatever"))
    sending = asyncio.create_task(bot.send_video(7, b"mp4 bytes", caption="done"))
    await before.wait()
    await after.wait()
    [video] = fake.messages.values()  # sent, though the answer is held
    assert video["caption"] == "done" and fake.calls_of("sendVideo")[0].ok
    # Cancelling closes the connections, as killing the bot would.
    lookup.cancel()
    sending.cancel()
    await until(lambda: before.waiting == after.waiting == 0)
    await until(lambda: len(asyncio.all_tasks()) <= baseline)
    [lookup_call] = fake.calls_of("getFile")
    assert (lookup_call.status, lookup_call.error) == (0, "client disconnected")
    again = await bot.send_video(7, b"mp4 bytes")  # times=1: not held
    assert again.video is not None and len(fake.messages) == 2
    before.release()
    assert server_errors == []


async def test_hold_file_download_and_shutdown_ends_holds(fake: FakeTelegram, bot: Bot) -> None:
    stored = await bot.get_file(fake.add_file(b"video bytes", ".mp4")["file_id"])
    hold = fake.hold("file")
    download = asyncio.create_task(stored.download_as_bytearray())
    await hold.wait()
    assert fake.file_downloads == []
    hold.release()
    assert bytes(await download) == b"video bytes"
    assert fake.file_downloads == ["videos/file_1.mp4"]

    fake.hold("sendChatAction")
    typing = asyncio.create_task(bot.send_chat_action(7, ChatAction.TYPING))
    await fake.wait_for_call("sendChatAction")
    fake.shutdown()
    with pytest.raises(NetworkError, match="Service Unavailable"):
        await typing
    assert fake.calls_of("sendChatAction")[0].status == 503


async def test_delay_answers_late_after_the_work(
    fake: FakeTelegram, bot: Bot, server_errors: list[logging.LogRecord]
) -> None:
    fake.delay("sendMessage", 0.1, times=1)
    started = time.monotonic()
    await bot.send_message(7, "slow")
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    await bot.send_message(7, "fast")
    assert time.monotonic() - started < 0.1

    fake.delay("editMessageText", 5)
    with pytest.raises(TimedOut):
        await bot.edit_message_text("edited", 7, 1, read_timeout=0.05)
    assert fake.messages[(7, 1)]["text"] == "edited"  # Telegram did it; the bot just never knew
    fake.delay("editMessageText", 0)
    assert isinstance(await bot.edit_message_text("again", 7, 1), Message)
    assert server_errors == []


async def test_get_updates_502_then_normal(
    fake: FakeTelegram, root: str, bot: Bot, http: httpx.AsyncClient
) -> None:
    fake.send_text(ANN, "are you there?")
    fake.fail_next("getUpdates", status=502, times=2)
    raw = await http.post(f"{root}/bot{TOKEN}/getUpdates", data={"timeout": "0"})
    assert raw.status_code == 502 and raw.headers["content-type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in raw.text
    with pytest.raises(NetworkError, match="Bad Gateway"):
        await bot.get_updates(timeout=0)
    [update] = await bot.get_updates(timeout=0)
    assert update.message is not None and update.message.text == "are you there?"
    fake.fail_next("getUpdates", status=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.get_updates(timeout=0)
    statuses = [(c.status, c.error) for c in fake.calls_of("getUpdates")]
    assert statuses == [
        (502, "Bad Gateway"),
        (502, "Bad Gateway"),
        (200, None),
        (500, "Internal Server Error"),
    ]
