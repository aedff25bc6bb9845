"""The bot people use: Chinese and English, settings, /status, progress, preview, admins."""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import string
from collections.abc import Callable
from typing import Any

import av
import pytest

import bot.chat.handlers.status
import storage.drafts
from bot.chat.texts import EN, ZH
from storage.models import TaskState
from tests.conftest import PHOTO, button, buttons, generate, until
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_both_languages_have_every_text_with_the_same_placeholders() -> None:
    assert set(EN) == set(ZH)
    for key in EN:
        assert placeholders(EN[key]) == placeholders(ZH[key]), key


async def test_a_chinese_speaker_gets_chinese_end_to_end(harness: Run) -> None:
    async with harness(callbacks=True) as h:
        h.kie.finish_after = 0.2
        h.user = FakeUser(id=8008, first_name="李", language_code="zh-hans")
        start = h.telegram.send_text(h.user, "/start")
        assert "照片" in (await h.reply_to(start)).params["text"]
        photo = h.telegram.send_photo(h.user, PHOTO, "小猫慢慢眨眼")
        draft = await h.draft_for(photo)
        labels = " ".join(buttons(draft))
        for word in ("5秒", "10秒", "声音", "生成", "取消"):
            assert word in labels, labels
        assert "视频草稿" in draft["text"]
        h.telegram.tap(h.user, draft, button(draft, "生成"))
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert "秒" in video.params["caption"] and "小猫慢慢眨眼" in video.params["caption"]
        video_buttons = {
            b["text"] for row in video.params["reply_markup"]["inline_keyboard"] for b in row
        }
        assert {"🔁 再来一次", "🖼 同一张照片，新提示词"} <= video_buttons
        done = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "已完成" in c.params["text"]
        )
        assert done
        status = h.telegram.send_text(h.user, "/status")
        assert "你的视频" in (await h.reply_to(status)).params["text"]
        zh_menu = {c["command"] for c in h.telegram.my_commands("zh")}
        assert {"start", "help", "status", "settings", "cancel"} <= zh_menu


async def test_settings_persist_across_a_restart(harness: Run) -> None:
    async with harness() as h:
        command = h.telegram.send_text(h.user, "/settings")
        screen = h.message(await h.reply_to(command))
        assert "Your defaults" in screen["text"]
        for label, sign in (("10s", "10 s"), ("Sound", "🔊"), ("中文", "默认设置")):
            h.telegram.tap(h.user, h.current(screen), button(h.current(screen), label))
            await h.telegram.wait_for_call(
                "editMessageText", lambda c, s=sign: s in c.params["text"]
            )
        await h.restart()
        photo = h.telegram.send_photo(h.user, PHOTO, "the sea at dusk")
        draft = await h.draft_for(photo)
        labels = set(buttons(draft))
        assert "✅ 10秒" in labels and "🔊 声音：开" in labels and "✨ 生成" in labels


async def test_the_free_preview_delivers_a_real_mp4(harness: Run) -> None:
    async with harness(backends=()) as h:
        assert h.settings.configured_backends() == ["preview"]
        photo = h.telegram.send_photo(h.user, PHOTO, "a gentle zoom")
        draft = await h.draft_for(photo)
        assert "Free preview" in draft["text"] and "not an AI video" in draft["text"]
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        video = (await h.telegram.wait_for_call("sendVideo", timeout=20))[0]
        with av.open(io.BytesIO(video.files["video"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            frames = sum(1 for _ in container.decode(stream))
            seconds = float(container.duration or 0) / av.time_base
        assert abs(seconds - 5.0) < 0.2 and frames >= 100
        assert h.kie.requests == []  # no network: only the local renderer


async def test_status_pages_and_its_buttons(harness: Run) -> None:
    async with harness(poll_interval=60.0, max_active_tasks_per_user=0) as h:
        for n in range(7):
            await generate(h, f"prompt number {n}")
            await h.wait_task(lambda t, n=n: t.id == n + 1 and t.state is TaskState.QUEUED)
        command = h.telegram.send_text(h.user, "/status")
        first = h.message(await h.reply_to(command))
        assert "#7" in first["text"] and "#3" in first["text"] and "#2" not in first["text"]
        assert "Page 1 of 2" in first["text"]
        h.telegram.tap(h.user, first, button(first, "▶️"))
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "Page 2 of 2" in c.params["text"]
        )
        second = h.current(first)
        assert "#2" in second["text"] and "#7" not in second["text"]
        polls = h.kie.polls()
        query = h.telegram.tap(h.user, second, button(second, "🔄 #1"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: c.params["callback_query_id"] == query
        )
        await asyncio.sleep(0.3)
        assert h.kie.polls() > polls  # refresh asked the provider at once


async def test_again_and_new_prompt_from_a_delivered_video(harness: Run) -> None:
    async with harness() as h:
        h.kie.finish_after = 0.1
        photo = await generate(h, "the lantern sways")
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        message = h.message(video)
        h.telegram.tap(h.user, message, button(message, "Again"))
        again = await h.telegram.wait_for_call(
            "sendMessage",
            lambda c: "the lantern sways" in c.params["text"] and "draft" in c.params["text"],
            count=2,
        )
        assert again[-1].params["reply_parameters"]["message_id"] == photo["message_id"]
        assert "Generate" in " ".join(buttons(h.message(again[-1])))
        h.telegram.tap(h.user, message, button(message, "New prompt"))
        await h.telegram.wait_for_call(
            "sendMessage", lambda c: "send me the prompt" in c.params["text"]
        )
        h.telegram.send_text(h.user, "now the lantern glows")
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "now the lantern glows" in c.params["text"]
        )
        assert len(h.kie.creates()) == 1  # neither button paid for anything by itself


async def test_a_double_tap_on_again_or_new_prompt_makes_one_draft(
    harness: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage.drafts, "DOUBLE_TAP", 1.0)
    async with harness() as h:
        h.kie.finish_after = 0.1
        await generate(h, "the lantern sways")
        message = h.message((await h.telegram.wait_for_call("sendVideo"))[0])

        def drafts() -> list[Any]:
            return [
                c
                for c in h.telegram.calls_of("sendMessage")
                if c.ok and "the lantern sways" in c.params["text"] and "Generate" in str(c.params)
            ]

        def prompts_asked() -> list[Any]:
            return [
                c
                for c in h.telegram.calls_of("sendMessage")
                if "send me the prompt" in c.params["text"]
            ]

        answers = len(h.telegram.calls_of("answerCallbackQuery"))
        for _ in range(2):  # the same instant
            h.telegram.tap(h.user, message, button(message, "Again"))
        await h.telegram.wait_for_call("answerCallbackQuery", count=answers + 2)
        for _ in range(2):
            h.telegram.tap(h.user, message, button(message, "New prompt"))
        await h.telegram.wait_for_call("answerCallbackQuery", count=answers + 4)
        await asyncio.sleep(0.3)
        assert len(drafts()) == 2  # the photo's own, and one again
        assert len(prompts_asked()) == 1
        # A tap after that moment is meant: two variants of one video, say.
        await asyncio.sleep(1.0)
        h.telegram.tap(h.user, message, button(message, "Again"))
        await until(lambda: len(drafts()) == 3, timeout=3)


async def test_a_double_tap_whose_first_draft_telegram_refused_still_shows_one(
    harness: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot.chat.handlers.status, "SHOWN_WITHIN", 0.5)
    async with harness() as h:
        h.kie.finish_after = 0.1
        await generate(h, "the lantern sways")
        message = h.message((await h.telegram.wait_for_call("sendVideo"))[0])
        h.telegram.fail_next("sendMessage", status=500)  # the first tap's draft
        for _ in range(2):
            h.telegram.tap(h.user, message, button(message, "Again"))

        def shown() -> list[Any]:
            return [
                c
                for c in h.telegram.calls_of("sendMessage")
                if c.ok and "the lantern sways" in c.params["text"] and "Generate" in str(c.params)
            ]

        await until(lambda: len(shown()) == 2, timeout=5)  # the photo's own, and the one again
        await asyncio.sleep(0.8)
        assert len(shown()) == 2


async def test_cancel_command(harness: Run) -> None:
    async with harness() as h:
        nothing = h.telegram.send_text(h.user, "/cancel")
        assert "no open draft" in (await h.reply_to(nothing)).params["text"]
        photo = h.telegram.send_photo(h.user, PHOTO, "clouds race")
        draft = await h.draft_for(photo)
        command = h.telegram.send_text(h.user, "/cancel")
        assert "cancelled" in (await h.reply_to(command)).params["text"]
        assert "cancelled" in h.current(draft)["text"] and not h.current(draft).get("reply_markup")


async def test_admin_commands(harness: Run) -> None:
    async with harness(
        backends=("kie", "kling"), admin_user_ids=str(9000), poll_interval=60.0
    ) as h:
        await generate(h)
        h.kie.fail_next("createTask", code=402, msg="no credits")
        await generate(h, "this one fails")
        await h.wait_task(lambda t: t.state is TaskState.FAILED)
        denied = h.telegram.send_text(h.user, "/balance")
        assert "admins" in (await h.reply_to(denied)).params["text"]
        admin = FakeUser(id=9000, first_name="Root")
        balance = h.telegram.send_text(admin, "/balance")
        text = (await h.reply_to(balance)).params["text"]
        assert "kie.ai: 1234 credits" in text and "42 of 100 left" in text
        stats = h.telegram.send_text(admin, "/stats")
        text = (await h.reply_to(stats)).params["text"]
        assert re.search(r"queued 1", text) and re.search(r"failed 1", text)
        assert "Kling 2.6 · kie.ai 2" in text and "no credits" in text
        scoped = [c for c in h.telegram.calls_of("setMyCommands") if c.params.get("scope")]
        assert scoped and {"balance", "stats"} <= {
            c["command"] for c in scoped[0].params["commands"]
        }


async def test_progress_shows_elapsed_minutes_only_when_they_change(harness: Run) -> None:
    async with harness(poll_interval=0.05, task_timeout=600) as h:
        h.bot_options["progress_interval"] = 0.3
        await h.restart()
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.RUNNING)

        def progress() -> list[str]:
            return [
                c.params["text"].split("\n")[0]
                for c in h.telegram.calls_of("editMessageText")
                if c.params["message_id"] == task.status_message_id and "so far" in c.params["text"]
            ]

        await asyncio.sleep(1.0)  # polls every ≤ 0.6 s, but the minute shown stays the same
        assert progress() == [
            f"🎬 Task #{task.id} is generating… less than a minute so far. "
            "I will send the video when it is ready."
        ]
        for minutes in (1, 2):
            # The task is now a minute older: the next poll shows the new minute, once.
            await h.services.db.execute(
                "UPDATE tasks SET submitted_at = submitted_at - 60 WHERE id = ?", (task.id,)
            )
            await until(lambda m=minutes: f"{m} min so far" in progress()[-1], timeout=2)
        await asyncio.sleep(1.0)
        shown = progress()
        assert len(shown) == 3 and "1 min so far" in shown[1] and "2 min so far" in shown[2]
        edits = [c for c in h.telegram.calls_of("editMessageText") if "so far" in c.params["text"]]
        assert all(b.at - a.at >= 0.25 for a, b in itertools.pairwise(edits))
        actions = h.telegram.calls_of("sendChatAction")
        assert actions == []  # nothing is being sent yet
        await h.kie.complete(task.provider_task_id)
        await h.telegram.wait_for_call("sendVideo")
        assert any(
            c.params["action"] == "upload_video" for c in h.telegram.calls_of("sendChatAction")
        )
