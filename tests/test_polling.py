"""Polling without callbacks: learned times, one list query for Kling, kie's status limit."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bot.engine.timing import LEARNED_AFTER, RunTimes, Schedule, kind_of, polls_until, prior_of
from storage.models import Task, TaskState
from tests.conftest import PHOTO, Harness, button
from tests.fakes.common import RecordedRequest
from tests.fakes.telegram import FakeUser

Run = Callable[..., Any]

LIST_PATH = "/v1/videos/image2video"


async def start_tasks(h: Harness, count: int, first_user: int = 8000) -> list[Task]:
    """`count` users each send a photo and tap Generate; their tasks once queued."""
    users = [FakeUser(id=first_user + n, first_name=f"U{n}") for n in range(count)]
    for user in users:
        photo = h.telegram.send_photo(user, PHOTO, f"{user.first_name} waves")
        draft = await h.draft_for(photo)
        h.telegram.tap(user, draft, button(draft, "Generate"))
    ids = {user.id for user in users}
    async with asyncio.timeout(15):
        while True:
            tasks = await h.services.tasks.in_states(*TaskState)
            mine = [t for t in tasks if t.user_id in ids and t.provider_task_id is not None]
            if len(mine) == count:
                return mine
            await asyncio.sleep(0.02)


def status_queries(requests: list[RecordedRequest], prefix: str = "") -> tuple[int, int]:
    """(list queries, single-task queries) among the fake's requests."""
    gets = [r for r in requests if r.method == "GET"]
    listed = sum(1 for r in gets if r.path == prefix + LIST_PATH and "pageSize" in r.query)
    single = sum(1 for r in gets if r.path.startswith(prefix + LIST_PATH + "/"))
    return listed, single


async def test_kling_tasks_in_flight_share_one_list_query(harness: Run) -> None:
    async with harness(backends=("kling",), poll_interval=0.1) as h:
        assert h.kling is not None
        h.kling.finish_after = 1.0
        tasks = await start_tasks(h, 6)
        await h.telegram.wait_for_call("sendVideo", count=6, timeout=10)
        listed, single = status_queries(h.kling.requests)
        # What the bot knew while they ran: nothing yet, so the defaults.
        one = Schedule(RunTimes((), prior_of(kind_of(tasks[0]), 0.1)), 0.1)
        alone = len(polls_until(one, 1.0))
        # Six tasks asked about one by one: about 6 × `alone` queries. Listed, the early and
        # first dense looks of tasks started 0.1 s apart still come apart (sweeps may follow
        # each other after 0.01 s here, a tenth of POLL_INTERVAL); the rest are shared.
        assert single == 0
        assert 1 <= listed <= 3 * alone, (listed, alone)
        await asyncio.sleep(0.3)
        assert len(h.telegram.calls_of("sendVideo")) == 6  # never two videos


async def test_when_the_list_fails_tasks_are_asked_about_one_by_one(harness: Run) -> None:
    async with harness(backends=("kling",), poll_interval=0.1) as h:
        assert h.kling is not None
        h.kling.finish_after = 0.5
        h.kling.fail_next("lookup", code=5000, message="server error", http_status=500, times=50)
        await start_tasks(h, 2)
        await h.telegram.wait_for_call("sendVideo", count=2, timeout=10)
        listed, single = status_queries(h.kling.requests)
        assert listed >= 1 and single >= 2


async def test_a_proxy_without_a_list_is_asked_once_then_task_by_task(harness: Run) -> None:
    async with harness(backends=("tuzi",), poll_interval=0.1) as h:
        assert h.tuzi is not None
        h.tuzi.finish_after = 0.5
        await start_tasks(h, 3)
        await h.telegram.wait_for_call("sendVideo", count=3, timeout=10)
        listed, single = status_queries(h.tuzi.requests, prefix="/kling")
        assert listed == 1 and single >= 3


async def test_kie_status_queries_stay_within_its_limit(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    # 15 tasks on a 0.05 s schedule would ask kie far more than 10 times a second.
    async with harness(poll_interval=0.05) as h:
        assert h.kie.status_limit is not None  # the fake refuses the 11th query in a second
        await fifteen_within_the_limit(h, caplog, finish_after=2.0, timeout=30)


async def fifteen_within_the_limit(
    h: Harness, caplog: pytest.LogCaptureFixture, finish_after: float, timeout: float
) -> None:
    """Fifteen tasks polled every 0.05 s all deliver, with no status query refused."""
    h.kie.finish_after = finish_after
    await start_tasks(h, 15)
    await h.telegram.wait_for_call("sendVideo", count=15, timeout=timeout)
    refused = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert not refused, refused[0].getMessage()
    assert h.kie.polls() >= 15


class SlowWay(httpx.AsyncHTTPTransport):
    """A road to kie on which each status query takes its own time to arrive."""

    def __init__(self, longest: float) -> None:
        super().__init__()
        self._longest = longest
        self._random = random.Random(7)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/recordInfo"):
            await asyncio.sleep(self._random.uniform(0, self._longest))
        return await super().handle_async_request(request)


async def test_kie_status_queries_slow_to_arrive_stay_within_its_limit(
    harness: Run, caplog: pytest.LogCaptureFixture
) -> None:
    # kie counts a query when it arrives: one let through early may arrive late, among the
    # next window's. A query counts until a window after its answer, so none is refused.
    caplog.set_level(logging.INFO, logger="bot.engine.tracker")
    async with harness(start=False, poll_interval=0.05) as h:
        h.bot_options["provider_transport"] = SlowWay(0.6)
        await h.start()
        await fifteen_within_the_limit(h, caplog, finish_after=3.0, timeout=40)


async def test_finished_tasks_teach_the_schedule_and_the_time_left(harness: Run) -> None:
    async with harness(poll_interval=0.1) as h:
        h.kie.finish_after = 0.8
        tasks = await start_tasks(h, LEARNED_AFTER)
        await h.telegram.wait_for_call("sendVideo", count=LEARNED_AFTER, timeout=15)
        times = h.services.timings.of(tasks[0])
        assert times.learned
        assert times.quantile(0.5) == pytest.approx(0.8, abs=0.15)  # kie's costTime
        rows = await h.services.db.fetchall("SELECT COUNT(*) FROM run_times")
        assert rows[0][0] == LEARNED_AFTER
        # The next task's status message says how long is left.
        h.kie.finish_after = 5.0
        (late,) = await start_tasks(h, 1, first_user=9000)
        shown = await h.telegram.wait_for_call(
            "editMessageText",
            lambda c: f"#{late.id}" in c.params["text"] and "⏱" in c.params["text"],
            timeout=5,
        )
        assert "any moment" in shown[-1].params["text"]
