"""Faults, limits and bad input: nothing lost, nothing paid twice, every user told."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bot.engine.deliver import UPLOADS_AT_ONCE
from bot.engine.gate import Queued, RateGate
from bot.providers.kie import KieProvider
from bot.web import webhook_secret
from storage.models import TaskState
from tests.conftest import PHOTO, TOKEN, button, buttons, generate, jpeg, until
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]


async def test_kie_rate_limit_queues_creates_locally(
    harness: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KieProvider, "create_rate", (2, 1.0))
    async with harness() as h:
        h.kie.finish_after = 0.1
        users = [FakeUser(id=5000 + n) for n in range(3)]
        for user in users:
            photo = h.telegram.send_photo(user, PHOTO, f"user {user.id} waves")
            draft = await h.draft_for(photo)
            h.telegram.tap(user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "queued here" in c.params["text"]
        )
        await h.telegram.wait_for_call("sendVideo", count=3, timeout=8)
        creates = [r for r in h.kie.requests if r.path.endswith("createTask")]
        assert len(creates) == 3
        # No window of one second saw more than two creates.
        times = sorted(task.created for task in h.kie.tasks.values())
        assert times[2] - times[0] >= 0.95


async def test_late_success_after_the_deadline_is_delivered(harness: Run) -> None:
    async with harness(task_timeout=0.4, callbacks=True) as h:
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED, timeout=5)
        assert failed.error == "timeout"
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "stopped waiting" in c.params["text"]
        )
        await h.kie.complete(failed.provider_task_id)
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert video.files["video"] == h.kie.video
        done = await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        assert done.id == failed.id
        await asyncio.sleep(0.5)
        assert len(h.telegram.calls_of("sendVideo")) == 1


async def test_a_user_who_blocked_the_bot_gets_the_video_when_they_write_again(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0, callbacks=True) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        h.telegram.blocked_users.add(h.user.id)
        before = len(h.telegram.calls)
        await h.kie.complete(task.provider_task_id)
        await until(lambda: any(c.status == 403 for c in h.telegram.calls[before:]))
        await asyncio.sleep(0.3)
        refused = [c for c in h.telegram.calls[before:] if c.status == 403]
        assert len(refused) == 1  # one refusal, then the bot stops writing there
        assert await h.services.chats.is_blocked(h.user.id)
        # Not delivered (the user did not get it), and not tried while the chat blocks the bot.
        waiting = await h.services.tasks.get(task.id)
        assert waiting is not None and waiting.state is TaskState.DELIVERING
        assert waiting.next_poll_at is None and waiting.sending_at is None
        assert h.telegram.calls_of("sendVideo") == []
        h.telegram.blocked_users.discard(h.user.id)
        start = h.telegram.send_text(h.user, "/start")
        await h.reply_to(start)
        assert not await h.services.chats.is_blocked(h.user.id)
        # Writing again brings the video it missed: once.
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 1


async def test_a_video_refused_because_the_chat_blocked_the_bot_is_sent_not_linked_later(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0, callbacks=True) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        # Blocked between the "sending a video" action and the upload itself.
        h.telegram.fail_next("sendVideo", status=403, description="Forbidden: bot was blocked")
        await h.kie.complete(task.provider_task_id)
        await until(lambda: any(c.status == 403 for c in h.telegram.calls_of("sendVideo")))
        await asyncio.sleep(0.3)
        waiting = await h.services.tasks.get(task.id)
        assert waiting is not None and waiting.state is TaskState.DELIVERING
        assert waiting.sending_at is None  # refused outright: it did not arrive
        start = h.telegram.send_text(h.user, "/start")
        await h.reply_to(start)
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        sent = [c for c in h.telegram.calls_of("sendVideo") if c.ok]
        assert len(sent) == 1
        assert not any(
            "http" in str(c.params.get("text", "")) for c in h.telegram.calls_of("sendMessage")
        )


async def test_polling_survives_bot_api_outages(harness: Run) -> None:
    async with harness() as h:
        h.telegram.fail_next("getUpdates", status=502, description="Bad Gateway", times=2)
        start = h.telegram.send_text(h.user, "/start")
        reply = await h.reply_to(start, timeout=15)
        assert "photo" in reply.params["text"]
        failed = [c for c in h.telegram.calls_of("getUpdates") if c.status == 502]
        assert len(failed) == 2


async def test_harmless_telegram_errors_change_nothing(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "rain on the window")
        draft = await h.draft_for(photo)
        five = h.telegram.tap(h.user, draft, button(draft, "5s"))  # already 5 s
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == five
        )
        too_old = (
            "Bad Request: query is too old and response timeout expired or query ID is invalid"
        )
        h.telegram.fail_next("answerCallbackQuery", description=too_old)
        h.telegram.tap(h.user, draft, button(draft, "10s"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "10 s" in c.params["text"])
        not_modified = [c for c in h.telegram.calls_of("editMessageText") if c.status == 400]
        assert len(not_modified) == 1
        assert not any("went wrong" in str(c.params.get("text", "")) for c in h.telegram.calls)


async def test_allowed_users_only_on_every_handler(harness: Run) -> None:
    async with harness(allowed_user_ids="1001") as h:
        stranger = FakeUser(id=666, first_name="Mallory")
        photo = h.telegram.send_photo(stranger, PHOTO, "let me in")
        reply = await h.reply_to(photo)
        assert "private" in reply.params["text"]
        mine = h.telegram.send_photo(h.user, PHOTO, "my own photo")
        draft = await h.draft_for(mine)
        query = h.telegram.tap(stranger, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        assert "private" in h.telegram.answered(query)["text"]
        assert await h.services.tasks.for_user(666) == []
        assert h.kie.creates() == []


async def test_active_task_limit_is_friendly_and_keeps_the_draft(harness: Run) -> None:
    async with harness(max_active_tasks_per_user=1, poll_interval=60.0, callbacks=True) as h:
        await generate(h, "first")
        first = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        photo = h.telegram.send_photo(h.user, PHOTO, "second")
        draft = await h.draft_for(photo)
        query = h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        answer = h.telegram.answered(query)
        assert "already have 1 videos in progress" in answer["text"] and answer["show_alert"]
        await h.kie.complete(first.provider_task_id)
        await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        h.telegram.tap(h.user, h.current(draft), button(draft, "Generate"))
        await h.wait_task(lambda t: t.id != first.id and t.state is TaskState.QUEUED)
        assert len(h.kie.creates()) == 2


async def test_daily_limit(harness: Run) -> None:
    async with harness(daily_tasks_per_user=1, poll_interval=60.0) as h:
        await generate(h, "one")
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        photo = h.telegram.send_photo(h.user, PHOTO, "two")
        draft = await h.draft_for(photo)
        query = h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        assert "last 24 hours" in h.telegram.answered(query)["text"]
        assert len(h.kie.creates()) == 1


async def test_overlong_prompt_can_be_trimmed(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "a" * 900 + " " + "b" * 300)
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "Trim"))
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "at most 1000" not in c.params["text"]
        )
        draft = h.current(draft)
        assert not any("Trim" in label for label in buttons(draft))
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        prompt = h.kie.creates()[0].json["input"]["prompt"]
        assert len(prompt) <= 1000 and prompt.startswith("a" * 900)


async def test_tiny_and_odd_shaped_images(harness: Run) -> None:
    async with harness(poll_interval=60.0, backends=("kling",)) as h:
        assert h.kling is not None
        tiny = h.telegram.send_photo(h.user, jpeg(90, 90), "tiny", width=90, height=90)
        assert "too small" in (await h.reply_to(tiny)).params["text"]
        wide = jpeg(3000, 600)
        photo = h.telegram.send_photo(h.user, wide, "a long panorama", width=3000, height=600)
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        import base64
        import io

        from PIL import Image

        sent = Image.open(io.BytesIO(base64.b64decode(h.kling.creates()[0].json["image"])))
        assert sent.size == (3000, 1200)  # padded to 2.5:1, which Kling takes


async def test_every_kind_of_non_image_is_explained(harness: Run) -> None:
    async with harness() as h:
        sent = [
            h.telegram.send_sticker(h.user),
            h.telegram.send_video(h.user),
            h.telegram.send_voice(h.user),
            h.telegram.send_animation(h.user),
            h.telegram.send_document(h.user, b"PK\x03\x04zip", "a.zip", "application/zip"),
        ]
        for message in sent:
            assert "not an image" in (await h.reply_to(message)).params["text"]
        assert h.kie.requests == []


async def test_telegram_webhook_checks_its_secret(harness: Run) -> None:
    async with harness(callbacks=True, telegram_webhook=True) as h:
        (hook,) = h.telegram.calls_of("setWebhook")
        assert hook.params["url"] == f"{h.settings.public_url}/telegram"
        secret = hook.params["secret_token"]
        assert secret == webhook_secret(TOKEN) and TOKEN not in secret
        assert h.telegram.calls_of("getUpdates") == []
        update = {
            "update_id": 1,
            "message": {
                "message_id": 10,
                "date": 0,
                "chat": {"id": h.user.id, "type": "private"},
                "from": h.user.to_dict(),
                "text": "/start",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            },
        }
        url = f"{h.settings.public_url}/telegram"
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
            )
            missing = await client.post(url, content=json.dumps(update))
            good = await client.post(
                url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
            )
        assert forged.status_code == 403 and missing.status_code == 403
        assert good.status_code == 200
        replies = await h.telegram.wait_for_call(
            "sendMessage", lambda c: c.params["reply_parameters"]["message_id"] == 10
        )
        assert len(replies) == 1 and "photo" in replies[0].params["text"]


async def test_lost_kie_create_answer_is_told_with_a_retry_button(harness: Run) -> None:
    async with harness(provider_timeout=0.5, poll_interval=0.05) as h:
        held = h.kie.hold("createTask", after=True, times=1)
        await generate(h)
        await held.wait()
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert failed.error == "uncertain"
        notice = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "may not have started" in c.params["text"]
        )
        held.release()
        assert len(h.kie.tasks) == 1  # kie took it, and the bot did not pay again by itself
        message = h.current(h.telegram.messages[(h.user.id, notice[-1].params["message_id"])])
        retry = button(message, "Retry")
        first = h.telegram.tap(h.user, message, retry)
        second = h.telegram.tap(h.user, message, retry, force=True)
        h.kie.finish_after = 0.1
        await h.telegram.wait_for_call("sendVideo")
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == second
        )
        answers = {h.telegram.answered(q)["text"] for q in (first, second)}
        assert answers == {"Trying again…", "This task was already tried again."}
        await asyncio.sleep(0.3)
        assert len(h.kie.tasks) == 2 and len(h.telegram.calls_of("sendVideo")) == 1


async def test_lost_kling_create_answer_is_found_by_external_id(harness: Run) -> None:
    async with harness(backends=("kling",), provider_timeout=0.5, poll_interval=0.05) as h:
        assert h.kling is not None
        h.kling.finish_after = 1.0
        held = h.kling.hold("create", after=True, times=1)
        await generate(h)
        await held.wait()
        await h.telegram.wait_for_call("sendVideo", timeout=8)
        held.release()
        assert len(h.kling.tasks) == 1 and len(h.kling.creates()) == 1
        lookups = [
            r
            for r in h.kling.requests
            if r.method == "GET" and r.query.get("external_task_id", "").startswith("kb")
        ]
        assert lookups  # looked up by our external_task_id, the documented query form


async def test_kling_create_that_never_arrived_is_sent_again_once(harness: Run) -> None:
    async with harness(backends=("kling",), provider_timeout=0.5, poll_interval=0.05) as h:
        assert h.kling is not None
        h.kling.finish_after = 0.2
        held = h.kling.hold("create", times=1)  # held before Kling creates anything
        await generate(h)
        await h.telegram.wait_for_call("sendVideo", timeout=8)
        held.release()
        assert len(h.kling.creates()) == 2 and len(h.kling.tasks) == 1


async def test_duplicate_and_out_of_order_callbacks_give_one_video(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        statuses = await h.kie.send_callback(task.provider_task_id, state="generating", times=2)
        assert statuses == [200, 200]
        await h.kie.complete(task.provider_task_id)
        late = await h.kie.send_callback(task.provider_task_id, state="generating", times=3)
        again = await h.kie.send_callback(task.provider_task_id, state="success", times=3)
        assert set(late + again) == {200}
        await h.telegram.wait_for_call("sendVideo")
        await asyncio.sleep(0.5)
        assert len(h.telegram.calls_of("sendVideo")) == 1
        done = await h.services.tasks.get(task.id)
        assert done.state is TaskState.DELIVERED


async def test_flood_control_waits_and_sends(harness: Run) -> None:
    async with harness() as h:
        h.telegram.fail_next("sendMessage", status=429, retry_after=1)
        start = h.telegram.send_text(h.user, "/start")
        reply = await h.reply_to(start, timeout=10)
        attempts = [c for c in h.telegram.calls_of("sendMessage")]
        assert [c.status for c in attempts] == [429, 200]
        assert reply.at - attempts[0].at >= 1.0  # waited as Telegram asked


async def test_flood_control_on_a_video_upload(harness: Run) -> None:
    async with harness() as h:
        h.kie.finish_after = 0.1
        h.telegram.fail_next("sendVideo", status=429, retry_after=1)
        await generate(h)
        sent = await h.telegram.wait_for_call("sendVideo", lambda c: c.ok, timeout=10)
        attempts = h.telegram.calls_of("sendVideo")
        assert [c.status for c in attempts] == [429, 200]
        assert sent[0].at - attempts[0].at >= 1.0
        assert sent[0].files["video"] == h.kie.video


async def test_a_task_whose_process_died_right_after_the_claim_starts_after_one_lease(
    harness: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness(poll_interval=0.05, callbacks=True) as h:
        submitter = h.services.submitter
        # The process dies between claiming the draft and its submitter taking the task.
        monkeypatch.setattr(submitter, "start", lambda task: None)
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.SUBMITTING)
        assert task.next_poll_at is not None
        assert task.next_poll_at - task.created_at == pytest.approx(submitter.pickup, abs=0.01)
        # The sweep takes it once the lease it stands for runs out (3 s here, not a minute).
        # The sweep takes it once the lease it stands for runs out (3 s here, not a minute);
        # with replicas, other processes' trackers look at least once a renewal period.
        h.services.tracker.poke()
        await h.wait_task(lambda t: t.provider_task_id is not None, timeout=submitter.pickup + 3)
        assert len(h.kie.creates()) == 1


async def test_videos_upload_a_few_at_a_time_and_one_waiting_has_sent_nothing(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0, callbacks=True) as h:
        users = [FakeUser(id=7400 + n, first_name=f"U{n}") for n in range(UPLOADS_AT_ONCE + 2)]
        for user in users:
            photo = h.telegram.send_photo(user, PHOTO, f"{user.first_name} waves")
            draft = await h.draft_for(photo)
            h.telegram.tap(user, draft, button(draft, "Generate"))
        await until(lambda: len(h.kie.creates()) == len(users), timeout=10)
        queued = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        assert queued is not None
        uploads = h.telegram.hold("sendVideo")
        for task in await h.services.tasks.in_states(TaskState.QUEUED, TaskState.RUNNING):
            assert task.provider_task_id is not None
            await h.kie.complete(task.provider_task_id)
        await until(lambda: len(h.telegram.calls_of("sendVideo")) == UPLOADS_AT_ONCE, timeout=5)
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == UPLOADS_AT_ONCE
        # Those waiting for their turn have sent nothing: cut off now, each gets its video.
        delivering = await h.services.tasks.in_states(TaskState.DELIVERING)
        assert len(delivering) == len(users)
        assert sum(1 for t in delivering if t.sending_at is None) == 2
        # A reply to a user is not held behind the uploads.
        start = h.telegram.send_text(users[0], "/start")
        await h.reply_to(start)
        uploads.release()
        await until(
            lambda: len([c for c in h.telegram.calls_of("sendVideo") if c.ok]) == len(users),
            timeout=10,
        )
        for _ in range(50):  # recorded delivered once Telegram's answers are back
            delivered = await h.services.tasks.in_states(TaskState.DELIVERED)
            if len(delivered) == len(users):
                break
            await asyncio.sleep(0.1)
        assert len(delivered) == len(users)


class FlakyGate(RateGate):
    """kie's create gate whose database fails once, as a shared gate's may."""

    def __init__(self) -> None:
        super().__init__(20, 11.0)
        self.failures = 1

    @asynccontextmanager
    async def slot(self, on_queued: Queued | None = None) -> AsyncIterator[None]:
        if self.failures:
            self.failures -= 1
            raise ConnectionResetError("the database went away")
        async with super().slot(on_queued):
            yield


async def test_a_create_slot_that_cannot_be_had_sends_nothing_and_is_tried_again(
    harness: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with harness(poll_interval=0.05, callbacks=True) as h:
        gate = FlakyGate()
        monkeypatch.setitem(h.services.submitter._gates, "kie", gate)
        await generate(h)
        task = await h.wait_task(lambda t: t.provider_task_id is not None)
        assert gate.failures == 0 and task.error is None  # not "may not have started"
        assert len(h.kie.creates()) == 1


async def test_a_task_slow_to_be_shown_is_not_taken_over_nor_its_later_status_overwritten(
    harness: Run,
) -> None:
    async with harness(poll_interval=0.05, callbacks=True) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "the tide comes in")
        draft = await h.draft_for(photo)
        showing = h.telegram.hold("editMessageText", times=1)  # the task's first status
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await showing.wait(timeout=5)
        task = await h.wait_task(lambda t: t.state is TaskState.SUBMITTING)
        # Longer than a lease: the submitter holds the task, so no sweep takes it over, and
        # it makes the paid call only once the first status is on screen.
        h.services.tracker.poke()
        await asyncio.sleep(h.services.submitter.pickup + 1)
        held = await h.services.tasks.get(task.id)
        assert held is not None and held.lease_owner is not None
        assert h.kie.creates() == []
        showing.release()
        await h.wait_task(lambda t: t.id == task.id and t.provider_task_id is not None)
        assert len(h.kie.creates()) == 1
