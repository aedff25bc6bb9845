"""A video is marked delivered only when its user got it, or a link to it that arrived."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from bot.chat.views.task_list import task_list
from storage.models import Task, TaskState
from tests.conftest import Harness, generate, until
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]

# What a signed CDN link can hold; unescaped, "<x>" is a tag Telegram refuses to parse.
ODD_QUERY = "?sig=a<x>b&expires=1\"2'3"


async def finished_at(h: Harness, url_of: Callable[[str], str]) -> Task:
    """Generate a video and let kie finish it at the URL `url_of(its own URL)`, unseen yet."""
    await generate(h)
    task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
    assert task.provider_task_id is not None
    await h.kie.complete(task.provider_task_id)
    kie_task = h.kie.tasks[task.provider_task_id]
    assert kie_task.result_url is not None
    kie_task.result_url = url_of(kie_task.result_url)
    return task


async def check_now(h: Harness, task: Task) -> None:
    """Have the bot look at the task now rather than at its next poll, a minute away."""
    current = await h.services.tasks.get(task.id)
    assert current is not None and await h.services.tracker.wake(current)


def gone(url: str) -> str:
    """A URL on kie's host that answers 404 and that kie cannot renew (not a file it made):
    the download fails, so the link is sent."""
    return url.rsplit("/", 1)[0] + "/gone.mp4" + ODD_QUERY


def notices(h: Harness) -> list[Any]:
    return [c for c in h.telegram.calls_of("sendMessage") if "download" in c.params["text"]]


async def upload_and_notice_refused(h: Harness, task: Task) -> None:
    """Telegram refuses the task's upload, then its link notice twice: it stays undelivered,
    its upload begun (a restart then finishes it with the link)."""
    h.telegram.fail_next("sendVideo", description="Bad Request: wrong file")
    h.telegram.fail_next("sendMessage", times=2)
    await check_now(h, task)
    await h.telegram.wait_for_call("sendMessage", lambda c: not c.ok, count=2)
    await asyncio.sleep(0.2)


async def made_days_ago(h: Harness, task: Task, days: float, *columns: str) -> None:
    """Move the task's submission, and `columns`, `days` into the past (links and the
    keeping of videos count from about the submission)."""
    then = time.time() - days * 86400
    for column in ("submitted_at", *columns):
        await h.services.db.execute(f"UPDATE tasks SET {column} = ? WHERE id = ?", (then, task.id))


def renewals(h: Harness) -> list[Any]:
    """The requests for a fresh link (kie's download-url)."""
    return [r for r in h.kie.requests if r.path == "/api/v1/common/download-url"]


async def failed_as(h: Harness, task: Task, error: str) -> Task:
    """The task once failed, which must be for `error` and never delivered."""
    failed = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.FAILED)
    assert failed.error == error and failed.delivered_at is None
    return failed


async def test_a_link_with_html_characters_reaches_the_user(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, gone)
        await check_now(h, task)
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        (notice,) = notices(h)  # taken at the first try, as HTML
        assert notice.ok and notice.params["parse_mode"] == "HTML"
        shown = h.message(notice)["text"]  # as Telegram shows it, entities parsed
        assert done.result_url is not None and done.result_url in shown
        assert done.result_url.endswith(ODD_QUERY)


async def test_html_refused_falls_back_to_plain_text(harness: Run) -> None:
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, gone)
        h.telegram.fail_next("sendMessage", description="Bad Request: can't parse entities")
        await check_now(h, task)
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        refused, plain = notices(h)
        assert not refused.ok and refused.params["parse_mode"] == "HTML"
        assert plain.ok and "parse_mode" not in plain.params
        assert done.result_url is not None and done.result_url in plain.params["text"]


async def test_a_notice_refused_twice_keeps_the_task_undelivered_until_a_restart(
    harness: Run,
) -> None:
    admin = FakeUser(id=9000, first_name="Root")
    async with harness(poll_interval=60.0, admin_user_ids=str(admin.id)) as h:
        task = await finished_at(h, gone)
        h.telegram.fail_next("sendMessage", times=2)
        await check_now(h, task)
        await h.telegram.wait_for_call("sendMessage", lambda c: not c.ok, count=2)
        await asyncio.sleep(0.2)
        held = await h.services.tasks.get(task.id)
        assert held is not None
        assert held.state is TaskState.DELIVERING and held.delivered_at is None
        # /status and /stats show it as not sent, to its user and to the admins.
        status = h.telegram.send_text(h.user, "/status")
        assert f"#{task.id} · sending" in (await h.reply_to(status)).params["text"]
        late = held.model_copy(update={"updated_at": time.time() - 3600})
        assert "not delivered yet" in task_list("en", [late], h.services.catalogue)
        stats = h.telegram.send_text(admin, "/stats")
        text = (await h.reply_to(stats)).params["text"]
        assert "not delivered yet" in text and f"#{task.id} ·" in text
        await h.restart()
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        assert done.delivered_at is not None
        assert len([c for c in notices(h) if c.ok]) == 1
        assert h.telegram.calls_of("sendVideo") == []


async def test_a_refused_upload_and_refused_links_never_make_a_second_video(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, lambda url: url + ODD_QUERY)  # it downloads
        await upload_and_notice_refused(h, task)
        held = await h.services.tasks.get(task.id)
        assert held is not None
        assert held.state is TaskState.DELIVERING and held.sending_at is not None
        await h.restart()
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        (link,) = [c for c in notices(h) if c.ok]
        assert "restarted while sending" in link.params["text"]
        assert not [c for c in h.telegram.calls_of("sendVideo") if c.ok]


async def test_balance_stays_one_message_whatever_a_provider_answers(harness: Run) -> None:
    admin = FakeUser(id=9000, first_name="Root")
    async with harness(backends=("kie", "kling"), admin_user_ids=str(admin.id)) as h:
        h.kie.fail_next("credit", code=500, msg="<b>upstream & " + "error " * 2000)
        balance = h.telegram.send_text(admin, "/balance")
        reply = await h.reply_to(balance)
        shown = h.message(reply)["text"]
        assert "kie.ai" in shown and "<b>upstream &" in shown and len(shown) < 4096
        assert "42 of 100 left" in shown


async def test_a_refused_delivery_is_tried_again_without_a_restart(harness: Run) -> None:
    # POLL_INTERVAL 0.1 s: a refused delivery is tried again 3 s later (30 intervals).
    async with harness(poll_interval=0.1) as h:
        task = await finished_at(h, gone)
        h.telegram.fail_next("sendMessage", times=2)  # Telegram down for the notice, twice
        await check_now(h, task)
        await h.telegram.wait_for_call("sendMessage", lambda c: not c.ok, count=2)
        # The retry is written just after the second refusal comes back: wait for that write.
        held = await h.wait_task(
            lambda t: t.id == task.id and t.next_poll_at is not None, timeout=2
        )
        assert held.state is TaskState.DELIVERING
        assert held.next_poll_at is not None  # a retry is scheduled, not left to a restart
        done = await h.wait_task(
            lambda t: t.id == task.id and t.state is TaskState.DELIVERED, timeout=10
        )
        assert done.delivered_at is not None
        assert len([c for c in notices(h) if c.ok]) == 1
        assert h.telegram.calls_of("sendVideo") == []


def too_big(h: Harness) -> list[Any]:
    return [c for c in h.telegram.calls_of("sendMessage") if "too large" in c.params["text"]]


def videos(h: Harness) -> list[Any]:
    return [c for c in h.telegram.calls_of("sendVideo") if c.ok and c.files.get("video")]


async def test_a_result_link_that_expired_is_fetched_again_through_a_fresh_one(
    harness: Run,
) -> None:
    # Delivered late (the bot was down, the chat blocked it): kie's result URL has expired
    # after its 24 h, but kie keeps the media 14 days and gives a fresh link to it.
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, lambda url: url)
        h.kie.results_expired = True
        await check_now(h, task)
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        assert len(videos(h)) == 1 and notices(h) == []
        (asked,) = renewals(h)
        assert json.loads(asked.body) == {"url": done.result_url}
        assert len(h.kie.fresh_links) == 1


async def away_while_it_finished(h: Harness, days: float) -> Task:
    """The user blocks the bot, their video finishes `days` ago and waits for them."""
    await generate(h)
    task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
    h.telegram.blocked_users.add(h.user.id)
    assert task.provider_task_id is not None
    await h.kie.complete(task.provider_task_id)
    await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERING)
    await until(lambda: any(c.status == 403 for c in h.telegram.calls))
    await made_days_ago(h, task, days, "finished_at")
    return task


async def come_back(h: Harness) -> None:
    """The user unblocks the bot and writes: their waiting video is due."""
    h.telegram.blocked_users.discard(h.user.id)
    await h.reply_to(h.telegram.send_text(h.user, "/start"))


async def test_a_video_the_provider_no_longer_keeps_fails_instead_of_a_dead_link(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0, callbacks=True) as h:
        task = await away_while_it_finished(h, days=2)
        h.kie.results_expired = h.kie.results_deleted = True  # kie: "not found"
        await come_back(h)
        await failed_as(h, task, "expired")
        told = await h.telegram.wait_for_call(
            "editMessageText", lambda c: "no longer keeps it" in c.params["text"]
        )
        assert int(told[0].params["chat_id"]) == h.user.id
        assert videos(h) == [] and notices(h) == []


async def test_a_user_back_after_longer_than_the_backend_keeps_videos_gets_no_dead_link(
    harness: Run,
) -> None:
    # Back after 15 days: the link refuses us, kie will not renew it (a 422), and kie keeps
    # media 14 days: a link would be dead.
    async with harness(poll_interval=60.0, callbacks=True) as h:
        task = await away_while_it_finished(h, days=15)
        h.kie.results_expired = True
        h.kie.fail_next("downloadUrl", code=422, msg="Invalid URL")
        await come_back(h)
        await failed_as(h, task, "expired")
        assert videos(h) == [] and notices(h) == []


async def test_a_link_past_its_life_that_kie_will_not_renew_now_is_not_sent(
    harness: Run,
) -> None:
    # Back after 2 days: the link (24 h) refuses us and kie refuses to renew it (the key was
    # changed: 401). A link would be dead, the video is still kept: tried again later, and
    # sent once kie renews the link.
    async with harness(poll_interval=0.1, callbacks=True) as h:
        task = await away_while_it_finished(h, days=2)
        h.kie.results_expired = True
        h.kie.fail_next("downloadUrl", code=401, msg="unauthorized", http_status=401)
        await come_back(h)
        await until(lambda: len(renewals(h)) == 1, timeout=3)
        held = await h.wait_task(
            lambda t: t.id == task.id and t.lease_owner is None and t.next_poll_at is not None,
            timeout=3,
        )
        assert held.state is TaskState.DELIVERING and videos(h) == [] and notices(h) == []
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED, timeout=10)
        assert len(videos(h)) == 1 and notices(h) == [] and len(renewals(h)) == 2


async def test_a_refused_link_of_a_recent_video_is_still_sent(harness: Run) -> None:
    # Within the link's day a refusal may be a hiccup (or the user's browser may get what we
    # do not): the link goes, even when kie says it has no such file.
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, lambda url: url)
        h.kie.results_expired = h.kie.results_deleted = True
        await check_now(h, task)
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        (notice,) = notices(h)
        assert done.result_url is not None and done.result_url in notice.params["text"]


async def test_a_fresh_link_kie_cannot_give_now_is_asked_for_again_later(harness: Run) -> None:
    # POLL_INTERVAL 0.1 s: a delivery that got nothing is tried again 3 s later.
    async with harness(poll_interval=0.1) as h:
        task = await finished_at(h, lambda url: url)
        h.kie.results_expired = True
        h.kie.fail_next("downloadUrl", code=500, msg="server error")
        await check_now(h, task)
        # Given back with a retry time (no lease) once kie refused: nothing sent meanwhile.
        held = await h.wait_task(
            lambda t: t.id == task.id and t.state is TaskState.DELIVERING and t.lease_owner is None,
            timeout=2,
        )
        assert held.next_poll_at is not None and videos(h) == []
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED, timeout=10)
        assert len(videos(h)) == 1 and notices(h) == []
        assert len(renewals(h)) == 2


async def test_a_video_too_big_to_upload_gets_its_link_and_how_long_that_link_works(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0) as h:
        h.kie.video = bytes(51 * 1024 * 1024)  # over the 50 MB bots may upload; never read
        task = await finished_at(h, lambda url: url)
        await check_now(h, task)
        done = await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        (notice,) = too_big(h)
        assert f"{done.result_url}" in notice.params["text"]
        assert "too large to send here (51 MB)" in notice.params["text"]
        assert "within 24 hours" in notice.params["text"]
        # Its own link expired before a second one was due: the fresh link works 20 minutes.
        second = await finished_at(h, lambda url: url)
        h.kie.results_expired = True
        await check_now(h, second)
        await h.wait_task(lambda t: t.id == second.id and t.state is TaskState.DELIVERED)
        _, late = too_big(h)
        (fresh,) = h.kie.fresh_links
        assert fresh in late.params["text"] and "works for 20 minutes" in late.params["text"]
        assert videos(h) == []


async def test_after_a_cut_off_upload_an_expired_link_is_renewed_not_sent_dead(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, lambda url: url)
        await upload_and_notice_refused(h, task)
        h.kie.results_expired = True  # the bot comes back after the result's link expired
        await h.restart()
        await h.wait_task(lambda t: t.id == task.id and t.state is TaskState.DELIVERED)
        (link,) = [c for c in notices(h) if c.ok]
        (fresh,) = h.kie.fresh_links
        assert fresh in link.params["text"] and "within 20 minutes" in link.params["text"]
        assert "restarted while sending" in link.params["text"]
        assert not [c for c in h.telegram.calls_of("sendVideo") if c.ok]


async def test_after_a_cut_off_upload_a_video_no_longer_kept_fails_without_claiming_it_was_lost(
    harness: Run,
) -> None:
    async with harness(poll_interval=60.0) as h:
        task = await finished_at(h, lambda url: url)
        await upload_and_notice_refused(h, task)
        # The bot comes back two days on: the link has expired and kie no longer has the file.
        await made_days_ago(h, task, 2, "finished_at")
        h.kie.results_expired = h.kie.results_deleted = True
        await h.restart()
        await failed_as(h, task, "expired_unsure")
        await h.telegram.wait_for_call(
            "editMessageText", lambda c: "If it did not arrive above" in c.params["text"]
        )
        assert not [c for c in notices(h) if c.ok]


async def test_a_video_the_bot_noticed_late_is_judged_by_when_it_was_made(harness: Run) -> None:
    # The bot was down for two days while kie finished the task: it notices the end only now,
    # but the link is two days old (dead) and kie will not renew it now (a 401): no link.
    async with harness(poll_interval=60.0) as h:
        await generate(h)
        task = await h.wait_task(lambda t: t.state is TaskState.QUEUED)
        await made_days_ago(h, task, 2, "created_at")
        await h.stop()
        assert task.provider_task_id is not None
        await h.kie.complete(task.provider_task_id)
        h.kie.results_expired = True
        h.kie.fail_next("downloadUrl", code=401, msg="unauthorized", http_status=401)
        await h.start()
        await check_now(h, task)
        await until(lambda: bool(renewals(h)), timeout=3)
        held = await h.wait_task(
            lambda t: t.id == task.id and t.state is TaskState.DELIVERING and t.lease_owner is None
        )
        assert held.finished_at is not None and held.finished_at > time.time() - 60
        await asyncio.sleep(0.3)
        assert notices(h) == [] and videos(h) == []


async def test_a_late_delivery_telegram_refuses_gets_its_day_of_retries(harness: Run) -> None:
    # The video finished two days ago while the user blocked the bot; they write again and
    # Telegram refuses the upload and the notice: tried again (30 intervals, 3 s here), not
    # given up at once because the video is older than a day.
    async with harness(poll_interval=0.1, callbacks=True) as h:
        task = await away_while_it_finished(h, days=2)
        h.telegram.fail_next("sendVideo", description="Bad Request: wrong file")
        h.telegram.fail_next("sendMessage", times=2)
        # They write again (what /start's guard does, without a reply to be refused).
        h.telegram.blocked_users.discard(h.user.id)
        assert await h.services.chats.unblock(h.user.id)
        assert await h.services.tasks.deliver_in_chat(h.user.id) == 1
        h.services.tracker.poke()
        await h.telegram.wait_for_call("sendMessage", lambda c: not c.ok, count=2)
        held = await h.wait_task(
            lambda t: t.id == task.id and t.lease_owner is None and t.next_poll_at is not None,
            timeout=3,
        )
        assert held.state is TaskState.DELIVERING
        done = await h.wait_task(
            lambda t: t.id == task.id and t.state is TaskState.DELIVERED, timeout=10
        )
        assert done.delivered_at is not None
        (link,) = [c for c in notices(h) if c.ok]
        assert "restarted while sending" in link.params["text"]
        assert not [c for c in h.telegram.calls_of("sendVideo") if c.ok]
