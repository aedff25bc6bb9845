"""End to end: the real PTB Application against loopback Telegram and kie.ai fakes."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from bot.logs import configure_logging
from storage import Database, DraftRepository, TaskRepository
from storage.models import TaskState
from tests.conftest import (
    KIE_KEY,
    KLING_ACCESS,
    KLING_SECRET,
    PHOTO,
    TOKEN,
    TUZI_KEY,
    Harness,
    button,
    buttons,
    choose_model,
    generate,
    jpeg,
)
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]


def kie_traffic(h: Harness) -> str:
    """Every request the bot made to kie, as one string."""
    return "\n".join(f"{r.method} {r.path} {r.query} {r.body!r}" for r in h.kie.requests)


async def test_photo_to_video_by_polling(harness: Run) -> None:
    async with harness() as h:
        h.kie.finish_after = 0.3
        photo = h.telegram.send_photo(h.user, PHOTO, "the cat slowly blinks")
        draft = await h.draft_for(photo)
        labels = list(buttons(draft))
        for wanted in ("5s", "10s", "Sound", "Kling 2.6", "Generate", "Cancel"):
            assert any(wanted in label for label in labels), (wanted, labels)
        assert "the cat slowly blinks" in draft["text"]

        h.telegram.tap(h.user, draft, button(draft, "10s"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "10 s" in c.params["text"])
        draft = h.current(draft)
        assert "✅ 10s" in buttons(draft)
        h.telegram.tap(h.user, draft, button(draft, "Sound"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "🔊" in c.params["text"])
        draft = h.current(draft)
        assert "🔊 Sound: on" in buttons(draft)
        query = h.telegram.tap(h.user, draft, button(draft, "Generate"))

        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert video.files["video"] == h.kie.video
        assert video.params["reply_parameters"]["message_id"] == photo["message_id"]
        assert video.params["supports_streaming"] is True
        assert "the cat slowly blinks" in video.params["caption"]
        assert h.telegram.answered(query) is not None

        # The photo's bytes went through kie's upload, and only the upload URL was sent.
        (create,) = h.kie.creates()
        assert create.json["model"] == "kling-2.6/image-to-video"
        task_input = create.json["input"]
        assert task_input["duration"] == "10" and task_input["sound"] is True
        assert list(h.kie.uploads.values()) == [PHOTO]
        assert len(task_input["image_urls"]) == 1
        assert "callBackUrl" not in create.json
        traffic = kie_traffic(h)
        assert TOKEN not in traffic and "/file/bot" not in traffic

        task = await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        assert task.provider_task_id in h.kie.tasks
        await h.telegram.wait_for_call("editMessageText", lambda c: "is done" in c.params["text"])
        status = h.current(draft)
        assert "done" in status["text"] and not status.get("reply_markup")
        await asyncio.sleep(0.2)
        assert len(h.telegram.calls_of("sendVideo")) == 1


async def test_callback_sent_three_times_delivers_one_video(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0) as h:
        h.kie.callback_times = 3
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        create = h.kie.creates()[0]
        callback_url = create.json["callBackUrl"]
        assert callback_url == (
            f"{h.settings.public_url}/callbacks/kie/{task.id}/{task.callback_secret}"
        )
        await h.kie.complete(task.provider_task_id)
        video = (await h.telegram.wait_for_call("sendVideo", timeout=3))[0]
        assert video.files["video"] == h.kie.video
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 1
        assert [status for _, status in h.kie.callbacks_sent] == [200, 200, 200]
        # With a one-minute poll interval, only callbacks can have woken the task.
        assert 1 <= h.kie.polls(task.provider_task_id) <= 3
        final = await h.services.tasks.get(task.id)
        assert final.state is TaskState.DELIVERED


async def test_signed_callbacks_are_checked(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0, kie_hmac="webhook-hmac-key") as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        url = h.kie.creates()[0].json["callBackUrl"]
        body = {"code": 200, "data": {"taskId": task.provider_task_id, "state": "success"}}
        async with httpx.AsyncClient() as client:
            unsigned = await client.post(url, json=body)
        assert unsigned.status_code == 401
        await asyncio.sleep(0.1)
        assert h.kie.polls(task.provider_task_id) == 0
        await h.kie.complete(task.provider_task_id)  # signed by the fake with the shared key
        await h.telegram.wait_for_call("sendVideo")
        assert h.kie.callbacks_sent[-1][1] == 200


async def test_video_over_50_mb_is_sent_as_a_link(harness: Run) -> None:
    async with harness() as h:
        h.kie.video = bytes(50 * 1024 * 1024 + 1)
        h.kie.finish_after = 0.1
        await generate(h)
        link = await h.telegram.wait_for_call(
            "sendMessage", lambda c: "too large" in c.params.get("text", "")
        )
        task = await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        assert task.result_url in link[0].params["text"]
        assert h.telegram.calls_of("sendVideo") == []


async def test_forged_callbacks_are_refused(harness: Run) -> None:
    async with harness(callbacks=True, poll_interval=60.0) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        base = f"http://127.0.0.1:{h.bot.http_port}/callbacks/kie/{task.id}"
        body = {"code": 200, "data": {"taskId": task.provider_task_id, "state": "success"}}
        async with httpx.AsyncClient() as client:
            wrong = await client.post(f"{base}/not-the-secret", json=body)
            other = await client.post(f"{base}/{task.callback_secret}", json={"code": 200})
            mismatch = await client.post(
                f"{base}/{task.callback_secret}", json={"data": {"taskId": "someone-else"}}
            )
            huge = await client.post(f"{base}/{task.callback_secret}", content=b"x" * 2_000_000)
            health = await client.get(f"http://127.0.0.1:{h.bot.http_port}/healthz")
        assert wrong.status_code == 404
        assert other.status_code == 401
        assert mismatch.status_code == 400
        assert huge.status_code == 413
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        await asyncio.sleep(0.2)
        assert h.kie.polls(task.provider_task_id) == 0
        assert h.telegram.calls_of("sendVideo") == []


async def test_restart_mid_task_delivers_one_video(harness: Run) -> None:
    async with harness() as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await h.stop()
        await h.kie.complete(task.provider_task_id)
        await h.start()
        await h.telegram.wait_for_call("sendVideo")
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 1
        assert len(h.kie.creates()) == 1
        assert (await h.services.tasks.get(task.id)).state is TaskState.DELIVERED


async def test_restart_after_success_before_delivery_delivers_once(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await h.kie.complete(task.provider_task_id)
        await h.stop()
        # The previous run saw the success and stopped before delivering it.
        result_url = h.kie.tasks[task.provider_task_id].result_url
        async with Database.open(h.settings.database_path) as db:
            moved = await TaskRepository(db).advance(
                task.id, TaskState.SUCCEEDED, result_url=result_url, next_poll_at=time.time()
            )
            assert moved is not None
        await h.start()
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert video.files["video"] == h.kie.video
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 1
        assert h.kie.polls(task.provider_task_id) == 0


async def test_double_tap_creates_one_task(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "waves roll in")
        draft = await h.draft_for(photo)
        go = button(draft, "Generate")
        first = h.telegram.tap(h.user, draft, go)
        second = h.telegram.tap(h.user, draft, go)
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == second
        )
        answers = {h.telegram.answered(first)["text"], h.telegram.answered(second)["text"]}
        assert answers == {"Starting…", "This draft is already being generated."}
        await asyncio.sleep(0.2)
        assert len(h.kie.creates()) == 1
        assert len(await h.services.tasks.for_user(h.user.id)) == 1


async def test_status_lists_tasks_newest_first(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        await generate(h, "first prompt about a cat")
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await generate(h, "second prompt about the sea")
        await h.wait_task(lambda t: t.id == 2 and t.state is TaskState.QUEUED)
        command = h.telegram.send_text(h.user, "/status")
        reply = await h.reply_to(command)
        text = reply.params["text"]
        assert text.index("second prompt") < text.index("first prompt")
        assert "#2" in text and "#1" in text and "queued" in text and "Kling 2.6" in text
        stranger = FakeUser(id=2002, first_name="Bo")
        other = h.telegram.send_text(stranger, "/status")
        empty = await h.reply_to(other)
        assert "no videos yet" in empty.params["text"]


async def test_photo_without_caption_asks_for_the_prompt(harness: Run) -> None:
    async with harness() as h:
        photo = h.telegram.send_photo(h.user, PHOTO)
        ask = await h.reply_to(photo)
        assert "prompt" in ask.params["text"] and not ask.params.get("reply_markup")
        h.telegram.send_text(h.user, "leaves drift in the wind")
        edit = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "leaves drift" in c.params["text"]
        )
        assert edit[0].params["message_id"] == ask.result["message_id"]
        assert "Generate" in " ".join(buttons(h.message(ask)))
        lone = h.telegram.send_text(h.user, "hello?")
        hint = await h.reply_to(lone)
        assert "photo" in hint.params["text"]


async def test_failed_generation_is_explained(harness: Run) -> None:
    async with harness() as h:
        h.kie.finish_after = 0.1
        h.kie.outcome = "fail"
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert failed.error == "generation_failed"
        edit = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "failed" in c.params["text"]
        )
        assert "content moderation failed" in edit[0].params["text"]
        assert h.telegram.calls_of("sendVideo") == []


async def test_no_credits_is_told_and_nothing_is_tracked(harness: Run) -> None:
    async with harness() as h:
        h.kie.fail_next("createTask", code=402, msg="Credits insufficient")
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED)
        assert failed.error == "no_credits" and failed.next_poll_at is None
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "no credits left" in c.params["text"]
        )


async def test_timeout_fails_the_task_after_a_last_check(harness: Run) -> None:
    async with harness(task_timeout=0.4) as h:
        await generate(h)
        failed = await h.wait_task(lambda t: t.state is TaskState.FAILED, timeout=5)
        assert failed.error == "timeout"
        assert h.kie.polls(failed.provider_task_id) >= 1
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "stopped waiting" in c.params["text"]
        )


async def test_model_choice_changes_the_keyboard_and_the_request(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "a slow pan over the city")
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "Kling 2.6"))
        await h.telegram.wait_for_call("editMessageReplyMarkup")
        menu = h.current(draft)
        assert {"✅ Kling 2.6", "Kling 2.1 Pro", "Kling 2.5 Turbo Pro", "« Back"} <= set(
            buttons(menu)
        )
        h.telegram.tap(h.user, menu, button(menu, "2.1 Pro"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "2.1 Pro" in c.params["text"])
        draft = h.current(draft)
        assert not any("Sound" in label for label in buttons(draft))
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        create = h.kie.creates()[0]
        assert create.json["model"] == "kling/v2-1-pro"
        assert "image_url" in create.json["input"] and "sound" not in create.json["input"]


async def test_prompt_over_the_model_limit_is_not_sent(harness: Run) -> None:
    async with harness() as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "x" * 1001)
        draft = await h.draft_for(photo)
        assert "at most 1000" in draft["text"]
        query = h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        answer = h.telegram.answered(query)
        assert "at most 1000" in answer["text"] and answer["show_alert"] is True
        await asyncio.sleep(0.1)
        assert h.kie.creates() == [] and h.kie.uploads == {}


async def test_bad_input_gets_a_clear_answer_and_costs_nothing(harness: Run) -> None:
    async with harness() as h:
        pdf = h.telegram.send_document(h.user, b"%PDF-1.4 ...", "doc.pdf", "application/pdf")
        broken = h.telegram.send_document(
            h.user, PHOTO[: len(PHOTO) // 3], "cut.jpg", "image/jpeg", caption="go"
        )
        sticker = h.telegram.send_sticker(h.user)
        for message in (pdf, broken, sticker):
            reply = await h.reply_to(message)
            assert "not an image" in reply.params["text"]
        good = h.telegram.send_document(h.user, jpeg(800, 800), "ok.png", "image/jpeg", "spin")
        draft = await h.draft_for(good)
        assert "Generate" in " ".join(buttons(draft))
        draft_id = button(draft, "Generate").split(":")[1]
        forged = h.telegram.tap(h.user, draft, f"d:{draft_id}:zz", force=True)
        garbage = h.telegram.tap(h.user, draft, "hello", force=True)
        missing = h.telegram.tap(h.user, draft, "d:999:go", force=True)
        stranger = FakeUser(id=3003, first_name="Eve")
        theirs = h.telegram.tap(stranger, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call("answerCallbackQuery", count=4)
        assert "no longer valid" in h.telegram.answered(forged)["text"]
        assert "no longer valid" in h.telegram.answered(garbage)["text"]
        assert "no longer available" in h.telegram.answered(missing)["text"]
        assert "someone else" in h.telegram.answered(theirs)["text"]
        await asyncio.sleep(0.1)
        assert h.kie.creates() == []


async def test_cancel_closes_the_draft(harness: Run) -> None:
    async with harness() as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "a dog runs")
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "Cancel"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "cancelled" in c.params["text"])
        assert not h.current(draft).get("reply_markup")
        query = h.telegram.tap(h.user, draft, button(draft, "Generate"), force=True)
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        assert "no longer available" in h.telegram.answered(query)["text"]
        assert h.kie.creates() == []


async def test_start_help_and_chinese(harness: Run) -> None:
    async with harness() as h:
        start = h.telegram.send_text(h.user, "/start")
        assert "photo" in (await h.reply_to(start)).params["text"]
        help_ = h.telegram.send_text(h.user, "/help")
        assert "5s" in (await h.reply_to(help_)).params["text"]
        zh = FakeUser(id=4004, first_name="Li", language_code="zh-hans")
        photo = h.telegram.send_photo(zh, PHOTO, "小猫眨眼")
        draft = await h.draft_for(photo)
        labels = " ".join(buttons(draft))
        assert "生成" in labels and "声音" in labels and "取消" in labels
        assert h.telegram.my_commands("zh")


async def test_secrets_never_reach_the_logs(harness: Run) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    secrets = [TOKEN, KIE_KEY, KLING_ACCESS, KLING_SECRET, TUZI_KEY]
    configure_logging(secrets, stream=stream, level=logging.DEBUG)
    # Also keep the raw lines: our code must not log secrets at all; masking is a second net.
    raw = io.StringIO()
    unmasked = logging.StreamHandler(raw)
    unmasked.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root.addHandler(unmasked)
    try:
        async with harness(backends=("kie", "kling", "tuzi"), callbacks=True) as h:
            assert h.kling is not None and h.tuzi is not None
            h.kie.finish_after = h.kling.finish_after = h.tuzi.finish_after = 0.2
            h.telegram.send_document(h.user, b"%PDF", "x.pdf", "application/pdf")
            h.kie.fail_next("createTask", code=401, msg="bad key")
            await generate(h, "first try fails")
            await h.wait_task(lambda t: t.state is TaskState.FAILED)
            await generate(h, "second try works")
            for model in ("Kling API", "tu-zi"):
                photo = h.telegram.send_photo(h.user, PHOTO, f"via {model}")
                draft = await h.draft_for(photo)
                await choose_model(h, draft, model, "Kling 1.6")
                await h.telegram.wait_for_call(
                    "editMessageText", lambda c, m=model: f"Kling 1.6 · {m}" in c.params["text"]
                )
                h.telegram.tap(h.user, h.current(draft), button(h.current(draft), "Generate"))
            await h.telegram.wait_for_call("sendVideo", count=3, timeout=10)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    for logged in (stream.getvalue(), raw.getvalue()):
        assert "created at kie" in logged and "created at kling" in logged  # the run was logged
        assert "created at tuzi" in logged
        for secret in secrets:
            assert secret not in logged
        assert TOKEN.split(":")[1] not in logged and "/file/bot" not in logged


async def test_a_switch_pressed_twice_from_one_keyboard_sets_its_value_once(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "rain on the window")
        draft = await h.draft_for(photo)
        sound_on = button(draft, "Sound")
        # A double tap, or one press whose update is handled again: both name "sound on".
        for _ in range(2):
            query = h.telegram.tap(h.user, draft, sound_on)
            await h.telegram.wait_for_call(
                "answerCallbackQuery", lambda c, q=query: c.params["callback_query_id"] == q
            )
        stored = await DraftRepository(h.services.db).get(int(sound_on.split(":")[1]))
        assert stored is not None and stored.options.sound is True
        draft = h.current(draft)
        assert "🔊 Sound: on" in buttons(draft)
        # The redrawn switch names "off": pressing it turns sound off.
        h.telegram.tap(h.user, draft, button(draft, "Sound"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "🔇" in str(c.params))
        assert "🔇 Sound: off" in buttons(h.current(draft))


async def test_a_press_before_its_draft_message_is_recorded_shows_the_task_in_place(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0, callbacks=True) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "a heron takes off")
        draft = await h.draft_for(photo)
        drafts = DraftRepository(h.services.db)
        for _ in range(50):  # recorded once Telegram's answer is back…
            recorded = await drafts.for_photo(photo["chat"]["id"], photo["message_id"])
            if recorded is not None and recorded.message_id is not None:
                break
            await asyncio.sleep(0.05)
        # …and as if the press had come before that.
        await h.services.db.execute("UPDATE drafts SET message_id = NULL")
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        assert task.status_message_id == draft["message_id"]
        edits = h.telegram.calls_of("editMessageText")
        assert any(c.params["message_id"] == draft["message_id"] for c in edits)
        assert not any(
            "Task #" in str(c.params.get("text")) for c in h.telegram.calls_of("sendMessage")
        )
