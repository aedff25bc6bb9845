"""A Telegram update offered again (its consumer died, a webhook went unanswered): handled once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from telegram import Update
from telegram.ext import Application

from bot.chat.updates import OnceApplication, UpdateLedger
from bot.drafts.service import Photo
from bot.web import webhook_secret
from storage import DraftRepository
from storage.models import GenerationOptions
from storage.updates import UpdateRepository
from tests.conftest import PHOTO, TOKEN, replied_to

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


async def test_an_album_a_dead_replica_left_unshown_is_shown_by_another(harness: Run) -> None:
    async with harness() as h:
        # The photos were taken by a process that died before its timer showed the draft.
        sent = [
            h.telegram.send_photo(h.user, PHOTO, "a cat" if n == 0 else None, media_group_id="g9")
            for n in range(2)
        ]
        # That process had fetched them (nothing is awaited in between: this bot never sees them).
        h.telegram.drop_updates()
        for message in sent:
            await DraftRepository(h.services.db).add_to_album(
                user_id=h.user.id,
                chat_id=message["chat"]["id"],
                media_group_id="g9",
                message_id=message["message_id"],
                file_id=message["photo"][-1]["file_id"],
                caption=message.get("caption"),
                options=GenerationOptions(model="kie:kling-2.6/image-to-video"),
                lang="en",
                show_at=time.time() - 1,
            )
        draft = await h.draft_for(sent[0])
        assert "a cat" in draft["text"]
        await asyncio.sleep(1.0)
        assert replies_to(h, sent[0]) == 1


async def test_a_photo_handled_again_makes_no_second_draft(harness: Run) -> None:
    async with harness() as h:
        sent = h.telegram.send_photo(h.user, PHOTO, "a cat")
        await h.draft_for(sent)
        drafts = DraftRepository(h.services.db)
        for _ in range(50):  # the draft's message is recorded once Telegram's answer is back
            shown = await drafts.for_photo(sent["chat"]["id"], sent["message_id"])
            if shown is not None and shown.message_id is not None:
                break
            await asyncio.sleep(0.05)
        # Its handler died after showing the draft and before recording the update as handled:
        # another process handles the update again.
        photo = Photo(h.user.id, sent["chat"]["id"], sent["message_id"], "file-x", None)
        assert await h.services.drafts.open(photo, "a cat", "en") is None
        assert replies_to(h, sent) == 1


async def test_a_command_whose_handler_died_after_answering_is_answered_once(
    harness: Run,
) -> None:
    async with harness() as h:
        help_ = h.telegram.send_text(h.user, "/help")
        (body,) = h.telegram.deliverable_updates()
        h.telegram.drop_updates()  # taken by a process that is about to die
        application = h.bot.application
        update = Update.de_json(body, application.bot)
        dying = UpdateLedger(UpdateRepository(h.services.db), lease=0.3)

        async def answer_then_hang() -> None:
            await Application.process_update(application, update)
            await asyncio.Event().wait()

        handling = asyncio.create_task(
            dying.handle(update.update_id, answer_then_hang, wait=False, body=json.dumps(body))
        )
        await h.reply_to(help_)
        # Killed after its answer went out and was recorded, before the update was recorded
        # handled. (Cut off between Telegram's answer and that record, the reply would go
        # twice: the README says so.)
        recorded = "SELECT COUNT(*) FROM update_answers WHERE update_id = ?"
        for _ in range(100):
            row = await h.services.db.fetchone(recorded, (update.update_id,))
            if row is not None and row[0]:
                break
            await asyncio.sleep(0.02)
        handling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handling
        updates = UpdateRepository(h.services.db)
        sql = "SELECT handled_at FROM updates WHERE update_id = ?"

        async def handled() -> bool:
            row = await h.services.db.fetchone(sql, (update.update_id,))
            return row is not None and row[0] is not None

        # Another holder (this bot's rescue) handles it again once its time has run out.
        for _ in range(100):
            if await handled():
                break
            await asyncio.sleep(0.1)
        assert await handled()
        assert replies_to(h, help_) == 1
        assert [answer.request for answer in await updates.answers(update.update_id)] == [
            f"sendMessage {help_['chat']['id']}"
        ]
