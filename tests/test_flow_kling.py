"""End to end through the official Kling API and tu-zi fakes: options, albums, errors."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from typing import Any

from PIL import Image

from storage.models import TaskState
from tests.conftest import PHOTO, Harness, button, buttons, choose_model, generate, jpeg
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def album(h: Harness, photos: list[bytes], caption: str) -> dict[str, Any]:
    """Send photos as one album (caption on the first); return the draft shown for it."""
    sent = [
        h.telegram.send_photo(h.user, photo, caption if n == 0 else None, media_group_id="g1")
        for n, photo in enumerate(photos)
    ]
    return await h.draft_for(sent[0])


async def test_official_kling_by_poll_with_jwt(harness: Run) -> None:
    async with harness(backends=("kling",)) as h:
        assert h.kling is not None
        h.kling.finish_after = 0.3
        photo = h.telegram.send_photo(h.user, PHOTO, "the cat slowly blinks")
        draft = await h.draft_for(photo)
        labels = set(buttons(draft))
        assert "🔇 Sound: off" in labels and "⚙️ Mode: standard" in labels
        h.telegram.tap(h.user, draft, button(draft, "Mode"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "pro" in c.params["text"])
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert video.files["video"] == h.kling.video
        assert video.params["reply_parameters"]["message_id"] == photo["message_id"]
        (create,) = h.kling.creates()
        body = create.json
        assert body["model_name"] == "kling-v2-6" and body["mode"] == "pro"
        assert body["sound"] == "off" and body["duration"] == "5"
        assert body["image"] == b64(PHOTO)
        assert "cfg_scale" not in body and "callback_url" not in body
        assert h.kling.jwt_tokens  # the fake verified our JWT's signature and claims
        task = await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        assert body["external_task_id"] == f"kb{task.id}-{task.callback_secret[:8]}"
        assert h.kling.polls(task.provider_task_id) >= 1


async def test_kling_callbacks_flat_and_enveloped_deliver_once(harness: Run) -> None:
    for n, shape in enumerate(("flat", "envelope")):
        async with harness(backends=("kling",), callbacks=True, poll_interval=60.0) as h:
            assert h.kling is not None
            # A new fake numbers a chat's messages from 1 again, which Telegram never does
            # (the database of the first round remembers its photo): another user's chat.
            h.user = FakeUser(id=1001 + n)
            h.kling.callback_shape = shape
            h.kling.callback_times = 2
            await generate(h)
            task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
            body = h.kling.creates()[0].json
            assert body["callback_url"].endswith(
                f"/callbacks/kling/{task.id}/{task.callback_secret}"
            )
            await h.kling.complete(task.provider_task_id)
            await h.telegram.wait_for_call("sendVideo", timeout=3)
            await asyncio.sleep(0.3)
            assert len(h.telegram.calls_of("sendVideo")) == 1, shape
            assert [status for _, status in h.kling.callbacks_sent] == [200, 200], shape


async def test_tuzi_sends_its_required_fields_and_polls(harness: Run) -> None:
    async with harness(backends=("tuzi",), callbacks=True) as h:
        assert h.tuzi is not None
        h.tuzi.finish_after = 0.2
        await generate(h, "a lighthouse in the storm")
        video = (await h.telegram.wait_for_call("sendVideo"))[0]
        assert video.files["video"] == h.tuzi.video
        (create,) = h.tuzi.creates()
        assert create.path == "/kling/v1/videos/image2video"
        assert create.headers["authorization"] == "Bearer tuzi-test-key-0123456789"
        body = create.json
        assert body["aspect_ratio"] == "16:9" and body["duration"] == 5
        assert body["negative_prompt"] == "" and "callback_url" not in body


async def test_two_photo_album_is_start_and_end_frame(harness: Run) -> None:
    end = jpeg(1280, 720, "orange")
    async with harness(backends=("kling",), poll_interval=60.0) as h:
        assert h.kling is not None
        draft = await album(h, [PHOTO, end], "day turns into night")
        assert "the first starts the video, the second ends it" in draft["text"]
        # Kling 2.6 takes an end frame in pro only, and then no sound: the draft says so.
        assert "Kling 2.6 makes an end frame only in pro mode" in draft["text"]
        assert "cannot combine an end frame with sound" in draft["text"]
        assert "🖼 Photos: start → end" in buttons(draft)
        assert not any("Camera" in label or "Sound" in label for label in buttons(draft))
        assert not any("Mode" in label for label in buttons(draft))  # std would be refused
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        body = h.kling.creates()[0].json
        assert (body["model_name"], body["mode"], body["sound"]) == ("kling-v2-6", "pro", "off")
        assert body["image"] == b64(PHOTO) and body["image_tail"] == b64(end)


async def test_kie_album_uses_tail_image_url(harness: Run) -> None:
    end = jpeg(1280, 720, "navy")
    async with harness(poll_interval=60.0) as h:
        draft = await album(h, [PHOTO, end], "the tide comes in")
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        create = h.kie.creates()[0].json
        assert create["model"] == "kling/v2-5-turbo-image-to-video-pro"
        tail_url = create["input"]["tail_image_url"]
        assert h.kie.uploads[tail_url.split("/files/", 1)[1]] == end


async def test_three_photo_album_goes_to_multi_image(harness: Run) -> None:
    photos = [jpeg(1280, 720, color) for color in ("red", "green", "blue")]
    async with harness(backends=("kling",)) as h:
        assert h.kling is not None
        h.kling.finish_after = 0.2
        draft = await album(h, photos, "the three friends dance together")
        assert "3 photos as references" in draft["text"] and "Kling 1.6" in draft["text"]
        h.telegram.tap(h.user, draft, button(draft, "Photos"))  # references → first only
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "Only the first" in c.params["text"]
        )
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Photos"))  # back to references
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "as references" in c.params["text"]
        )
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call("sendVideo")
        (create,) = h.kling.creates()
        assert create.path == "/v1/videos/multi-image2video"
        assert [item["image"] for item in create.json["image_list"]] == [b64(p) for p in photos]
        task = await h.wait_task(lambda t: t.state is TaskState.DELIVERED)
        assert task.provider_task_id.startswith("multi:")


async def test_camera_move_on_kling_15_switches_to_pro(harness: Run) -> None:
    async with harness(backends=("kling",), poll_interval=60.0) as h:
        assert h.kling is not None
        photo = h.telegram.send_photo(h.user, PHOTO, "a quiet street at dawn")
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "Kling 2.6"))
        await h.telegram.wait_for_call("editMessageReplyMarkup")
        h.telegram.tap(h.user, h.current(draft), button(h.current(draft), "Kling 1.5"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "Kling 1.5" in c.params["text"])
        draft = h.current(draft)
        assert "⚙️ Mode: standard" in buttons(draft)
        h.telegram.tap(h.user, draft, button(draft, "Camera"))
        await h.telegram.wait_for_call("editMessageReplyMarkup", count=2)
        menu = h.current(draft)
        # Kling 1.5 takes only `simple` moves: no preset paths such as "Forward and up".
        assert {"Zoom in", "Pan left", "Tilt up", "✅ No camera move"} <= set(buttons(menu))
        assert "Forward and up" not in buttons(menu)
        h.telegram.tap(h.user, menu, button(menu, "Zoom in"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "Zoom in" in c.params["text"])
        draft = h.current(draft)
        assert "🎥 Camera: Zoom in ▾" in buttons(draft)
        assert "Kling 1.5 makes camera moves only in pro mode at 5 s" in draft["text"]
        assert "10s" not in buttons(draft)  # 10 s would be refused with a camera move
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        body = h.kling.creates()[0].json
        assert (body["model_name"], body["mode"], body["duration"]) == ("kling-v1-5", "pro", "5")
        assert body["camera_control"] == {"type": "simple", "config": {"zoom": -5}}
        assert "image_tail" not in body


async def test_negative_prompt_and_cfg_from_the_caption(harness: Run) -> None:
    async with harness(
        backends=("kling",), poll_interval=60.0, default_model="kling:kling-v1-6"
    ) as h:
        assert h.kling is not None
        caption = "a paper boat drifts\n--no blur, text\n--cfg 0.7"
        photo = h.telegram.send_photo(h.user, PHOTO, caption)
        draft = await h.draft_for(photo)
        assert "Avoid: blur, text" in draft["text"]
        assert "cfg 0.7" in draft["text"] and "🎚 CFG 0.7" in buttons(draft)
        h.telegram.tap(h.user, draft, button(draft, "CFG"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "cfg 0.9" in c.params["text"])
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        body = h.kling.creates()[0].json
        assert body["prompt"] == "a paper boat drifts"
        assert body["negative_prompt"] == "blur, text" and body["cfg_scale"] == 0.9


async def test_error_codes_become_clear_messages(harness: Run) -> None:
    cases = [
        (1102, "no credits left"),
        (1301, "content moderation"),
        (1201, "rejected the request"),
    ]
    async with harness(backends=("kling",), poll_interval=60.0) as h:
        assert h.kling is not None
        for n, (code, words) in enumerate(cases, start=1):
            h.kling.fail_next("create", code=code, message=f"code {code}", http_status=400)
            await generate(h, f"attempt {n}")
            failed = await h.wait_task(lambda t, n=n: t.id == n and t.state is TaskState.FAILED)
            assert failed.next_poll_at is None
            await h.telegram.wait_for_call(
                "editMessageText", lambda c, w=words: w in c.params["text"]
            )
        assert h.kling.tasks == {}


async def test_rate_limits_are_retried_with_backoff(harness: Run) -> None:
    async with harness(backends=("kling",), poll_interval=0.05) as h:
        assert h.kling is not None
        h.kling.finish_after = 0.1
        h.kling.fail_next(
            "create", code=1303, message="parallel task over limit", http_status=429, times=2
        )
        await generate(h)
        await h.telegram.wait_for_call("sendVideo")
        assert len(h.kling.creates()) == 3 and len(h.kling.tasks) == 1


async def test_kie_rate_limit_is_retried(harness: Run) -> None:
    async with harness() as h:
        h.kie.finish_after = 0.1
        h.kie.fail_next("createTask", code=429, msg="rate limited")
        await generate(h)
        await h.telegram.wait_for_call("sendVideo")
        assert len(h.kie.creates()) == 2 and len(h.kie.tasks) == 1


async def test_webp_is_converted_for_kling(harness: Run) -> None:
    out = io.BytesIO()
    Image.new("RGB", (800, 800), "purple").save(out, "WEBP")
    async with harness(backends=("kling",), poll_interval=60.0) as h:
        assert h.kling is not None
        doc = h.telegram.send_document(h.user, out.getvalue(), "x.webp", "image/webp", "it spins")
        draft = await h.draft_for(doc)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        sent = base64.b64decode(h.kling.creates()[0].json["image"])
        assert sent[:2] == b"\xff\xd8"  # JPEG, which Kling takes


async def test_webp_is_converted_for_kie(harness: Run) -> None:
    out = io.BytesIO()
    Image.new("RGB", (800, 800), "teal").save(out, "WEBP")
    async with harness(poll_interval=60.0) as h:
        doc = h.telegram.send_document(h.user, out.getvalue(), "x.webp", "image/webp", "it spins")
        draft = await h.draft_for(doc)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        (uploaded,) = h.kie.uploads.values()
        assert uploaded[:2] == b"\xff\xd8"  # kling-2.6 on kie takes JPEG and PNG only
        assert len(h.kie.creates()) == 1


async def test_every_backend_at_once_labels_models_by_backend(harness: Run) -> None:
    async with harness(backends=("kie", "kling", "tuzi"), poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, "fireflies at dusk")
        draft = await h.draft_for(photo)
        assert "Kling 2.6 · kie.ai" in draft["text"]
        h.telegram.tap(h.user, draft, button(draft, "Kling 2.6 · kie.ai"))
        await h.telegram.wait_for_call("editMessageReplyMarkup")
        menu = buttons(h.current(draft))
        # A tab per backend, then the shown backend's models, newest first.
        assert list(menu)[:3] == ["✅ kie.ai", "Kling API", "tu-zi"]
        assert list(menu)[3:5] == ["Kling 3.0", "Kling 3.0 Turbo"] and "✅ Kling 2.6" in menu
        assert "Kling 1.6" not in menu and len(menu) <= 12
        assert all(len(data.encode()) <= 64 for data in menu.values())
        await choose_model(h, draft, "tu-zi", "Kling 1.6")
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "Kling 1.6 · tu-zi" in c.params["text"]
        )


async def test_numbered_lines_become_shots_and_can_go_back_to_one(harness: Run) -> None:
    caption = "1. the kite rises\n2. it loops twice\n3. it lands softly"
    async with harness(default_model="kie:kling-3.0/video", poll_interval=60.0) as h:
        photo = h.telegram.send_photo(h.user, PHOTO, caption)
        draft = await h.draft_for(photo)
        assert "3 shots in one video" in draft["text"]
        assert "end frame" not in draft["text"]  # one photo: nothing was switched off
        assert "1. the kite rises (2 s)" in draft["text"]  # 5 s: 2 + 2 + 1
        h.telegram.tap(h.user, draft, button(draft, "10s"))
        await h.telegram.wait_for_call("editMessageText", lambda c: "(4 s)" in c.params["text"])
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        shots = h.kie.creates()[0].json["input"]
        assert shots["multi_shots"] is True and shots["duration"] == "10"
        assert [shot["duration"] for shot in shots["multi_prompt"]] == [4, 3, 3]
        # The same caption, back to one shot: the lines go as one prompt.
        photo = h.telegram.send_photo(h.user, PHOTO, caption)
        draft = await h.draft_for(photo)
        h.telegram.tap(h.user, draft, button(draft, "3 shots"))
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "go as one shot" in c.params["text"]
        )
        draft = h.current(draft)
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.wait_task(lambda t: t.state is TaskState.QUEUED and t.draft_id == 2)
        single = h.kie.creates()[1].json["input"]
        assert "multi_shots" not in single and single["prompt"] == caption


async def test_shots_the_model_cannot_make_are_said_plainly_and_cost_nothing(
    harness: Run,
) -> None:
    seven = "\n".join(f"{n}. step {n} of the dance" for n in range(1, 8))
    long_shot = "1. " + "a very long shot " * 40 + "\n2. a short one"
    async with harness(default_model="kie:kling-3.0/video", poll_interval=60.0) as h:
        draft = await h.draft_for(h.telegram.send_photo(h.user, PHOTO, seven))
        assert "Kling 3.0 makes at most 5 shots: your 7 lines go as one prompt" in draft["text"]
        assert not any("shot" in label for label in buttons(draft))
        draft = await h.draft_for(h.telegram.send_photo(h.user, PHOTO, long_shot))
        assert "Shot 1 has" in draft["text"] and "at most 500 a shot" in draft["text"]
        h.telegram.tap(h.user, draft, button(draft, "Generate"))
        await h.telegram.wait_for_call(
            "answerCallbackQuery", lambda c: "Shot 1 has" in (c.params.get("text") or "")
        )
        assert not h.kie.creates()


async def test_lines_on_a_model_without_shots_point_to_one_that_has_them(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        caption = "1. the kite rises\n2. it loops twice"
        draft = await h.draft_for(h.telegram.send_photo(h.user, PHOTO, caption))
        assert "Kling 3.0 can make your 2 lines 2 shots: choose it with 🎞" in draft["text"]
        await choose_model(h, draft, "kie.ai", "Kling 3.0")
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "Kling 3.0 ·" in c.params["text"]
        )
        assert "2 shots in one video" in h.current(draft)["text"]
        assert "🎬 2 shots" in buttons(h.current(draft))
