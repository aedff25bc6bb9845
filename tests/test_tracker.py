"""The tracker: how it copes when callbacks stop arriving, and its schedule in the database."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from storage.backends import BackendNotes
from storage.models import Task, TaskState
from tests.conftest import PHOTO, Harness, button, until
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]


async def _generate(h: Harness, user: FakeUser) -> Task:
    photo = h.telegram.send_photo(user, PHOTO, f"{user.first_name} waves")
    draft = await h.draft_for(photo)
    h.telegram.tap(user, draft, button(draft, "Generate"))
    return await h.wait_task(lambda t: t.user_id == user.id and t.state is TaskState.QUEUED)


async def _polled(h: Harness, task: Task, times: int, timeout: float) -> None:
    assert task.provider_task_id is not None
    await until(lambda: h.kie.polls(task.provider_task_id) >= times, timeout)


async def test_lost_callbacks_switch_the_backend_to_polling_until_one_arrives(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    # Safety-net polls come min(TASK_TIMEOUT / 2, 30 × POLL_INTERVAL) = 1.5 s apart.
    async with harness(callbacks=True, poll_interval=0.05) as h:
        wait = 30 * 0.05
        ann, bob, cy = (FakeUser(id=7100 + n, first_name=name) for n, name in enumerate("ABC"))
        first = await _generate(h, ann)
        assert first.next_poll_at is not None and first.submitted_at is not None
        assert first.next_poll_at - first.submitted_at == pytest.approx(wait, abs=0.01)
        assert first.provider_task_id is not None
        await h.kie.complete(first.provider_task_id)  # its callback arrives: no polls needed
        await h.telegram.wait_for_call("sendVideo")
        assert h.kie.polls(first.provider_task_id) == 1  # the one re-read after the callback
        # A check from a stale copy (read before the callback's check delivered it) polls
        # nothing and calls no callback lost.
        await h.services.tracker.check(first)
        assert h.kie.polls(first.provider_task_id) == 1
        assert "no callback came" not in caplog.text
        assert len(h.telegram.calls_of("sendVideo")) == 1

        h.kie.callback_times = 0  # from now on kie's callbacks never reach the bot
        lost = await _generate(h, ann)
        await asyncio.sleep(1.0)
        waiting = await _generate(h, bob)
        assert lost.provider_task_id is not None and waiting.provider_task_id is not None
        await h.kie.complete(lost.provider_task_id)
        assert h.kie.polls(lost.provider_task_id) == 0
        assert h.kie.polls(waiting.provider_task_id) == 0
        # The safety-net poll finds it done: delivered, and the lost callback is reported.
        await h.telegram.wait_for_call("sendVideo", count=2, timeout=wait + 1)
        assert h.kie.polls(lost.provider_task_id) == 1
        await until(lambda: "no callback came" in caplog.text)  # after a grace of 3 intervals
        # The other task is polled from now on, well before its own safety-net poll (1 s on).
        await _polled(h, waiting, 1, timeout=0.4)
        await _polled(h, waiting, 3, timeout=0.6)

        h.kie.callback_times = 1  # callbacks reach the bot again
        await h.kie.complete(waiting.provider_task_id)
        await h.telegram.wait_for_call("sendVideo", count=3)
        await until(lambda: "callbacks arrive again" in caplog.text, timeout=2)
        later = await _generate(h, cy)
        assert later.next_poll_at is not None and later.submitted_at is not None
        assert later.next_poll_at - later.submitted_at == pytest.approx(wait, abs=0.01)
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 3
        delivered = await h.services.tasks.in_states(TaskState.DELIVERED)
        assert sorted(t.id for t in delivered) == sorted([first.id, lost.id, waiting.id])


async def test_a_callback_during_a_safety_net_poll_is_not_called_lost(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    async with harness(callbacks=True, poll_interval=0.05) as h:
        task = await _generate(h, FakeUser(id=7200, first_name="Di"))
        assert task.provider_task_id is not None
        hold = h.kie.hold("recordInfo", times=1)
        await hold.wait(timeout=5)  # the safety-net poll is at the provider…
        await h.kie.complete(task.provider_task_id)  # …when the task ends and calls back
        hold.release()
        await h.telegram.wait_for_call("sendVideo")
        await asyncio.sleep(0.5)  # well past the grace a late callback gets
        assert "no callback came" not in caplog.text
        assert len(h.telegram.calls_of("sendVideo")) == 1


async def test_after_a_callback_a_failed_reread_is_retried_soon(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    # Safety-net polls are 3 s apart; normal polling looks again after about 1.3 s.
    async with harness(callbacks=True, poll_interval=0.1) as h:
        task = await _generate(h, FakeUser(id=7300, first_name="Ed"))
        assert task.provider_task_id is not None
        h.kie.fail_next("recordInfo", code=500, http_status=500)
        await h.kie.complete(task.provider_task_id)  # the re-read after the callback fails
        await h.telegram.wait_for_call("sendVideo", timeout=2.5)
        assert h.kie.polls(task.provider_task_id) == 2
        assert "no callback came" not in caplog.text


async def test_callbacks_another_process_found_lost_are_polled_here_until_one_arrives(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    async with harness(callbacks=True, poll_interval=0.05) as h:
        wait = 30 * 0.05  # a safety-net poll's distance while callbacks arrive
        notes = BackendNotes(h.services.db)
        tracker = h.services.tracker
        first = await _generate(h, FakeUser(id=7300, first_name="Ed"))
        assert first.next_poll_at is not None and first.submitted_at is not None
        assert first.next_poll_at - first.submitted_at == pytest.approx(wait, abs=0.01)
        # Another replica saw a task of this backend end without its callback.
        await notes.callbacks_lost(first.backend, time.time())
        await tracker.refresh_shared()
        assert "another process found its callbacks lost" in caplog.text
        second = await _generate(h, FakeUser(id=7301, first_name="Fa"))
        assert second.next_poll_at is not None and second.submitted_at is not None
        assert second.next_poll_at - second.submitted_at < wait / 2  # polled on its schedule
        # A callback arriving here tells every process that callbacks come again.
        assert second.provider_task_id is not None
        await h.kie.complete(second.provider_task_id)
        await h.telegram.wait_for_call("sendVideo")
        await until(lambda: "callbacks arrive again" in caplog.text, timeout=2)
        assert await notes.without_callbacks() == set()
