"""A Telegram update offered again (its consumer died, a webhook went unanswered): handled once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx

from bot.chat.updates import OnceApplication
from bot.web import webhook_secret
from tests.conftest import TOKEN, replied_to

Run = Callable[..., Any]


def replies_to(h: Any, message: dict[str, Any]) -> int:
    """How many messages the bot sent in reply to `message`."""
    chat_id = message["chat"]["id"]
    return sum(
        1
        for call in h.telegram.calls
        if call.method == "sendMessage"
        and call.ok
        and int(call.params["chat_id"]) == chat_id
        and replied_to(call) == message["message_id"]
    )


async def test_an_update_fetched_again_after_a_crash_is_not_handled_twice(harness: Run) -> None:
    async with harness() as h:
        help_ = h.telegram.send_text(h.user, "/help")
        await h.reply_to(help_)
        (update_id,) = [
            uid
            for uid, update in h.telegram.sent_updates.items()
            if update.get("message", {}).get("message_id") == help_["message_id"]
        ]
        # As if the process that handled it had died before confirming it: offered again.
        h.telegram.resend(update_id)
        later = h.telegram.send_text(h.user, "/start")
        await h.reply_to(later)
        await asyncio.sleep(0.3)
        assert replies_to(h, help_) == 1
        assert update_id not in {u["update_id"] for u in h.telegram.deliverable_updates()}


async def test_a_webhook_update_sent_twice_is_handled_once(harness: Run) -> None:
    async with harness(callbacks=True, telegram_webhook=True) as h:
        url = f"{h.settings.public_url}/telegram"
        secret = {"X-Telegram-Bot-Api-Secret-Token": webhook_secret(TOKEN)}
        help_ = h.telegram.send_text(h.user, "/help")
        (update,) = h.telegram.deliverable_updates()
        body = json.dumps(update).encode()
        async with httpx.AsyncClient(timeout=10) as client:
            first = await client.post(url, content=body, headers=secret)
            # Answered only after it was handled: the reply is already there.
            assert first.status_code == 200 and replies_to(h, help_) == 1
            second = await client.post(url, content=body, headers=secret)
        assert second.status_code == 200
        await asyncio.sleep(0.3)
        assert replies_to(h, help_) == 1
        assert isinstance(h.bot.application, OnceApplication)
