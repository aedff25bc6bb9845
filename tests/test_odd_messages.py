"""Every message gets an answer: odd kinds, GIFs, and images at the size limits."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.core.images import SMALLEST
from bot.web import webhook_secret
from tests.conftest import TOKEN, Harness, buttons, jpeg
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]

LOCATION = {"latitude": 52.52, "longitude": 13.405}
# Message kinds the fake cannot send, as Telegram delivers them; the last is one Telegram may
# add one day (python-telegram-bot keeps it aside as an unknown field).
ODD_KINDS: dict[str, dict[str, Any]] = {
    "location": {"location": LOCATION},
    "live location": {"location": {**LOCATION, "live_period": 900}},
    "contact": {"contact": {"phone_number": "+15550100", "first_name": "Bob"}},
    "venue": {
        "location": LOCATION,
        "venue": {"location": LOCATION, "title": "Café", "address": "Unter den Linden 1"},
    },
    "poll": {
        "poll": {
            "id": "5100000000000000001",
            "question": "Cats or dogs?",
            "options": [
                {"persistent_id": "o1", "text": "Cats", "voter_count": 0},
                {"persistent_id": "o2", "text": "Dogs", "voter_count": 0},
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    },
    "dice": {"dice": {"emoji": "\N{GAME DIE}", "value": 4}},
    "game": {
        "game": {
            "title": "Snake",
            "description": "A game",
            "photo": [{"file_id": "g1", "file_unique_id": "g1u", "width": 90, "height": 90}],
        }
    },
    "story": {"story": {"chat": {"id": 777, "type": "channel", "title": "News"}, "id": 3}},
    "some future kind": {"hologram": {"id": "h1", "depth": 3}},
}
_message_ids = itertools.count(10_000)


async def post(h: Harness, content: dict[str, Any], user: FakeUser, chat: dict[str, Any]) -> int:
    """Deliver a message as Telegram's webhook would; return its message_id."""
    message_id = next(_message_ids)
    update = {
        "update_id": message_id,
        "message": {
            "message_id": message_id,
            "date": 0,
            "chat": chat,
            "from": user.to_dict(),
            **content,
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(TOKEN)}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{h.settings.public_url}/telegram", json=update, headers=headers
        )
    assert answer.status_code == 200
    return message_id


async def reply_text(h: Harness, chat_id: int, message_id: int) -> str:
    """The text of the bot's reply to a message."""
    calls = await h.telegram.wait_for_call(
        "sendMessage",
        lambda c: (
            c.ok
            and c.params["chat_id"] == chat_id
            and c.params["reply_parameters"]["message_id"] == message_id
        ),
    )
    return str(calls[0].params["text"])


def private(user: FakeUser) -> dict[str, Any]:
    return {"id": user.id, "type": "private", "first_name": user.first_name}


async def test_every_kind_of_message_gets_the_photo_answer(harness: Run) -> None:
    async with harness(callbacks=True, telegram_webhook=True) as h:
        sent = {
            kind: await post(h, content, h.user, private(h.user))
            for kind, content in ODD_KINDS.items()
        }
        for kind, message_id in sent.items():
            text = await reply_text(h, h.user.id, message_id)
            assert "not an image" in text and "photo" in text, kind
        li = FakeUser(id=4004, first_name="Li", language_code="zh-hans")
        message_id = await post(h, ODD_KINDS["poll"], li, private(li))
        assert "照片" in await reply_text(h, li.id, message_id)
        assert h.kie.requests == []


async def test_service_messages_stay_unanswered_and_unknown_commands_are_answered(
    harness: Run,
) -> None:
    async with harness(callbacks=True, telegram_webhook=True) as h:
        group = {"id": -100, "type": "group", "title": "Friends"}
        joined = {"new_chat_members": [FakeUser(id=3003, first_name="Eve").to_dict()]}
        quiet = await post(h, joined, h.user, group)
        command = {
            "text": "/frobnicate",
            "entities": [{"type": "bot_command", "offset": 0, "length": 11}],
        }
        in_group = await post(h, command, h.user, group)
        asked = await post(h, command, h.user, private(h.user))
        assert "/help" in await reply_text(h, h.user.id, asked)
        await asyncio.sleep(0.2)
        replied = {
            c.params["reply_parameters"]["message_id"] for c in h.telegram.calls_of("sendMessage")
        }
        assert quiet not in replied and in_group not in replied


def gif() -> bytes:
    frames = [Image.new("RGB", (400, 300), color) for color in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


async def test_a_gif_is_refused_however_it_is_sent(harness: Run) -> None:
    async with harness() as h:
        sent = [
            h.telegram.send_document(h.user, gif(), "cat.gif", "image/gif", caption="it jumps"),
            h.telegram.send_document(h.user, gif(), "cat.jpg", "image/jpeg", caption="it jumps"),
            h.telegram.send_animation(h.user),
        ]
        for message in sent:
            text = (await h.reply_to(message)).params["text"]
            assert "GIF" in text and "still photo" in text
        await asyncio.sleep(0.1)
        assert not any("Generate" in str(c.params) for c in h.telegram.calls_of("sendMessage"))
        assert h.kie.requests == []


async def test_the_too_small_answer_states_the_limit_the_code_applies(harness: Run) -> None:
    async with harness() as h:
        side = SMALLEST - 1
        tiny = h.telegram.send_photo(h.user, jpeg(side, side), "tiny", width=side, height=side)
        text = (await h.reply_to(tiny)).params["text"]
        assert "too small" in text and f"at least {SMALLEST} px" in text
        li = FakeUser(id=4004, first_name="Li", language_code="zh-hans")
        tiny = h.telegram.send_photo(li, jpeg(side, side), "小", width=side, height=side)
        assert f"至少 {SMALLEST} 像素" in (await h.reply_to(tiny)).params["text"]
        small = jpeg(SMALLEST, SMALLEST)
        ok = h.telegram.send_photo(h.user, small, "small", width=SMALLEST, height=SMALLEST)
        assert "Generate" in " ".join(buttons(await h.draft_for(ok)))


@pytest.mark.parametrize("width", [SMALLEST - 1, SMALLEST])
async def test_files_at_the_limit_are_judged_as_photos_are(harness: Run, width: int) -> None:
    async with harness() as h:
        document = h.telegram.send_document(h.user, jpeg(width, 400), "a.jpg", "image/jpeg", "go")
        text = (await h.reply_to(document)).params["text"]
        assert ("too small" in text) == (width < SMALLEST)
