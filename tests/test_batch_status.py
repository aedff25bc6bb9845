"""Batch status (Kling's list query), the provider's own `took`, and kie's status query limit."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from bot.providers.base import ImageFile, PreparedTask, ProviderState, VideoRequest
from bot.providers.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.kie import KieProvider, parse_record
from bot.providers.kling import official_kling
from bot.providers.kling_wire import (
    LIST_PAGE_MAX,
    MULTI,
    SINGLE,
    OfficialShapeProvider,
    parse_task,
)
from bot.providers.tuzi import tuzi
from tests.fakes.common import SlidingWindow
from tests.fakes.kie import FakeKie
from tests.fakes.kling import I2V_PATH, MULTI_PATH, FakeKling
from tests.fakes.server import serve

KEY = "k" * 40
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
JPEG_B64 = base64.b64encode(JPEG).decode()
MINUTE_MS = 60_000
# Creation times the tests give the fake's tasks: a second apart, an hour ago.
START = time.time() - 3600


@asynccontextmanager
async def official() -> AsyncIterator[tuple[FakeKling, OfficialShapeProvider]]:
    """The official Kling fake on a loopback port, and our provider for it."""
    async with FakeKling(api_key=KEY) as fake, serve(fake.app) as url:
        provider = official_kling(url, api_key=KEY)
        try:
            yield fake, provider
        finally:
            await provider.aclose()


async def create(provider: OfficialShapeProvider, fake: FakeKling, multi: bool = False) -> str:
    """A task made the way the bot makes it; its creation time strictly after the last one's."""
    if multi:
        images = [{"image": JPEG_B64}, {"image": JPEG_B64}]
        payload: dict[str, Any] = {"model_name": "kling-v1-6", "image_list": images, "prompt": "p"}
        task_id = await provider.start(PreparedTask(route=MULTI, payload=payload))
    else:
        payload = {"model_name": "kling-v1", "image": JPEG_B64, "prompt": "p"}
        task_id = await provider.start(PreparedTask(route=SINGLE, payload=payload))
    # The list is newest first; equal clock readings would leave the order to chance.
    task = fake.tasks[task_id.removeprefix("multi:")]
    task.created = task.updated = START + len(fake.tasks)
    return task_id


def list_queries(fake: FakeKling, path: str = I2V_PATH) -> list[dict[str, str]]:
    """The query strings of the list requests the fake received at `path`."""
    return [r.query for r in fake.requests if r.method == "GET" and r.path.endswith(path)]


def per_task_queries(fake: FakeKling) -> int:
    return sum(1 for r in fake.requests if r.method == "GET" and r.path.count("/") > 3)


async def test_one_list_query_per_kind_answers_for_every_task() -> None:
    async with official() as (fake, provider):
        singles = [await create(provider, fake) for _ in range(8)]
        multis = [await create(provider, fake, multi=True) for _ in range(3)]
        await fake.complete(singles[0])
        await fake.complete(singles[1], success=False, message="risk control")
        await fake.complete(multis[0].removeprefix("multi:"))
        absent = ["never-made", "multi:never-made"]
        found = await provider.fetch_many([*singles, *multis, *absent])
    assert found is not None
    assert set(found) == {*singles, *multis}
    assert all(found[task_id].id == task_id for task_id in found)
    assert found[singles[0]].state is ProviderState.SUCCEEDED
    assert found[singles[0]].video_url == fake.tasks[singles[0]].result_url
    assert found[singles[1]].state is ProviderState.FAILED
    assert found[singles[1]].error == "risk control"
    assert found[multis[0]].state is ProviderState.SUCCEEDED
    for task_id in [*singles[2:], *multis[1:]]:
        assert found[task_id].state in (ProviderState.QUEUED, ProviderState.RUNNING)
    assert [q["pageNum"] for q in list_queries(fake)] == ["1"]
    assert [q["pageNum"] for q in list_queries(fake, MULTI_PATH)] == ["1"]
    assert per_task_queries(fake) == 0


async def test_more_ids_than_one_page_are_read_from_the_next_page() -> None:
    async with official() as (fake, provider):
        ids = [await create(provider, fake) for _ in range(LIST_PAGE_MAX + 30)]
        found = await provider.fetch_many(ids)
    assert found is not None and set(found) == set(ids)
    queries = list_queries(fake)
    assert [(q["pageNum"], q["pageSize"]) for q in queries] == [("1", "500"), ("2", "500")]
    assert list_queries(fake, MULTI_PATH) == []


async def test_paging_stops_when_all_are_found_or_after_three_pages() -> None:
    async with official() as (fake, provider):
        ids = [await create(provider, fake) for _ in range(170)]  # ids[-1] is the newest
        found = await provider.fetch_many([ids[-1]])
        assert found is not None and set(found) == {ids[-1]}
        assert [q["pageNum"] for q in list_queries(fake)] == ["1"]
        # Pages of 50, newest first: ids[60] is 110th (page 3), ids[0] 170th (beyond it).
        found = await provider.fetch_many([ids[0], ids[60], ids[-1]])
    assert found is not None and set(found) == {ids[60], ids[-1]}
    assert [(q["pageNum"], q["pageSize"]) for q in list_queries(fake)[1:]] == [
        ("1", "50"),
        ("2", "50"),
        ("3", "50"),
    ]


async def test_a_short_page_ends_the_search() -> None:
    async with official() as (fake, provider):
        ids = [await create(provider, fake) for _ in range(3)]
        found = await provider.fetch_many([*ids, "long-gone"])
    assert found is not None and set(found) == set(ids)
    assert len(list_queries(fake)) == 1


async def test_took_comes_from_kling_timestamps_for_ended_tasks_only() -> None:
    async with official() as (fake, provider):
        done, failed, running = [await create(provider, fake) for _ in range(3)]
        for task_id in (done, failed):
            fake.tasks[task_id].created = time.time() - 90
        await fake.complete(done)
        await fake.complete(failed, success=False)
        one = await provider.fetch(done)
        many = await provider.fetch_many([done, failed, running])
    assert many is not None
    assert one.took == pytest.approx(90, abs=0.1)
    assert many[done].took == pytest.approx(90, abs=0.1)
    assert many[failed].took == pytest.approx(90, abs=0.1)
    assert many[running].took is None


@pytest.mark.parametrize(
    ("status", "created", "updated", "took"),
    [
        ("succeed", 1_000_000, 1_000_000 + 2 * MINUTE_MS, 120.0),
        ("failed", 1_000_000, 1_000_000 + 1500, 1.5),
        ("processing", 1_000_000, 1_000_000 + MINUTE_MS, None),
        ("succeed", 1_000_000, 1_000_000, None),  # zero
        ("succeed", 1_000_000, 999_000, None),  # negative
        ("succeed", 1_000_000, 1_000_000 + 3 * 24 * 60 * MINUTE_MS, None),  # three days
        ("succeed", None, 1_000_000, None),
        ("succeed", "1000", 1_000_000, None),
        ("succeed", True, 1_000_000, None),
    ],
)
def test_kling_took_is_none_unless_plausible(
    status: str, created: Any, updated: Any, took: float | None
) -> None:
    video = {"videos": [{"url": "https://v.test/1.mp4"}]}
    data = {"task_status": status, "created_at": created, "updated_at": updated}
    assert parse_task({**data, "task_result": video}, "t").took == took


@pytest.mark.parametrize(
    ("state", "fields", "took"),
    [
        ("success", {"costTime": 75_000, "createTime": 1_000, "completeTime": 91_000}, 75.0),
        ("success", {"costTime": None, "createTime": 1_000, "completeTime": 91_000}, 90.0),
        ("success", {"costTime": 0, "createTime": 1_000, "completeTime": 91_000}, 90.0),
        ("fail", {"createTime": 1_000, "completeTime": 31_000}, 30.0),
        ("fail", {"createTime": 1_000, "completeTime": None}, None),
        ("success", {"costTime": -5, "createTime": 9_000, "completeTime": 1_000}, None),
        ("success", {"costTime": 3 * 24 * 60 * MINUTE_MS}, None),
        ("generating", {"costTime": 75_000, "createTime": 1_000, "completeTime": 91_000}, None),
    ],
)
def test_kie_took_is_cost_time_else_complete_minus_create(
    state: str, fields: dict[str, Any], took: float | None
) -> None:
    data = {"taskId": "t", "state": state, "resultJson": '{"resultUrls":["https://v.test/1"]}'}
    assert parse_record({**data, **fields}).took == took


def video_request() -> VideoRequest:
    image = ImageFile(data=JPEG, mime_type="image/jpeg", file_name="a.jpg", width=64, height=64)
    return VideoRequest(
        model="kling/v2-1-pro", prompt="p", image=image, duration=5, external_id="kb-1"
    )


async def test_took_comes_from_kie_records_and_its_fake_gives_times_on_success_only() -> None:
    async with FakeKie(KEY) as fake, serve(fake.app) as url:
        provider = KieProvider(KEY, api_url=url, upload_url=url)
        done, failed, running = [await provider.create(video_request()) for _ in range(3)]
        for task_id in (done, failed):
            fake.tasks[task_id].created = time.time() - 90
        await fake.complete(done)
        await fake.complete(failed, success=False)
        tasks = {task_id: await provider.fetch(task_id) for task_id in (done, failed, running)}
        await provider.aclose()
        auth = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=auth) as http:
            records = {
                task_id: (
                    await http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
                ).json()["data"]
                for task_id in (done, failed)
            }
    assert tasks[done].took == pytest.approx(90, abs=0.1)
    assert tasks[failed].took is None  # kie gives costTime and completeTime on success only
    assert tasks[running].took is None
    assert records[done]["costTime"] == pytest.approx(90_000, abs=100)
    assert records[failed]["costTime"] is None and records[failed]["completeTime"] is None


async def test_only_the_official_shape_has_a_batch_query_and_only_kie_a_status_rate() -> None:
    kie = KieProvider(KEY, transport=httpx.MockTransport(lambda request: envelope([])))
    assert await kie.fetch_many(["t"]) is None
    await kie.aclose()
    assert (KieProvider.status_rate, OfficialShapeProvider.status_rate) == ((10, 1.0), None)


async def test_tu_zi_has_no_list_and_is_asked_once() -> None:
    async with (
        FakeKling(api_key=KEY, prefix="/kling", proxy_rules=True) as fake,
        serve(fake.app) as url,
    ):
        provider = tuzi(f"{url}/kling", KEY)
        first = await provider.fetch_many(["a", "multi:b"])
        second = await provider.fetch_many(["a", "multi:b"])
        await provider.aclose()
        asked = list_queries(fake) + list_queries(fake, MULTI_PATH)
        async with httpx.AsyncClient() as http:
            auth = {"Authorization": f"Bearer {KEY}"}
            answer = await http.get(f"{url}/kling{I2V_PATH}", headers=auth)
    assert first is None and second is None
    assert asked == [{"pageNum": "1", "pageSize": "50"}]
    assert answer.status_code == 404 and "code" not in answer.text


async def test_a_failed_list_query_raises_and_the_list_is_tried_again() -> None:
    async with official() as (fake, provider):
        task_id = await create(provider, fake)
        fake.fail_next("lookup", code=5000, message="server busy", http_status=500)
        with pytest.raises(ServiceUnavailableError):
            await provider.fetch_many([task_id])
        found = await provider.fetch_many([task_id])
    assert found is not None and set(found) == {task_id}
    assert len(list_queries(fake)) == 2


Answer = Callable[[httpx.Request], httpx.Response]


def mocked(answer: Answer) -> tuple[OfficialShapeProvider, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(request)

    transport = httpx.MockTransport(record)
    return official_kling("https://kling.test", api_key=KEY, transport=transport), sent


def envelope(data: Any, code: int = 0, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": "m", "data": data})


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, text="404 page not found"),
        httpx.Response(405, text="Method Not Allowed"),
        httpx.Response(404, json={"error": "no route"}),
        httpx.Response(200, json={"items": []}),
        envelope({"task_id": "t"}),  # a single task where a list belongs
        envelope(None),
    ],
)
async def test_answers_that_show_no_list_are_remembered(answer: httpx.Response) -> None:
    provider, sent = mocked(lambda request: answer)
    assert await provider.fetch_many(["t"]) is None
    assert await provider.fetch_many(["t", "multi:u"]) is None
    await provider.aclose()
    assert len(sent) == 1


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused", request=request)


@pytest.mark.parametrize(
    ("first", "error"),
    [
        (lambda request: envelope(None, code=1000, status=401), AuthenticationError),
        (lambda request: envelope(None, code=5001, status=503), ServiceUnavailableError),
        (lambda request: envelope(None, code=1302, status=429), RateLimitError),
        (lambda request: envelope(None, code=1201, status=404), InvalidRequestError),
        (
            lambda request: httpx.Response(502, text="<html>bad gateway</html>"),
            ServiceUnavailableError,
        ),
        (refused, ProviderConnectionError),
    ],
)
async def test_errors_raise_and_keep_the_list(first: Answer, error: type[ProviderError]) -> None:
    answers = iter([first, lambda request: envelope([{"task_id": "t"}])])
    provider, sent = mocked(lambda request: next(answers)(request))
    with pytest.raises(error):
        await provider.fetch_many(["t"])
    found = await provider.fetch_many(["t"])
    await provider.aclose()
    assert found is not None and set(found) == {"t"}
    assert len(sent) == 2


async def test_no_ids_cost_no_request() -> None:
    provider, sent = mocked(lambda request: envelope([]))
    assert await provider.fetch_many([]) == {}
    await provider.aclose()
    assert sent == []


# ---- kie's status query limit ---------------------------------------------------------------


async def poll(http: httpx.AsyncClient, task_ids: Sequence[str]) -> list[int]:
    codes = []
    for task_id in task_ids:
        response = await http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
        assert response.status_code == 200
        codes.append(response.json()["code"])
    return codes


async def test_fake_kie_takes_ten_status_queries_a_second_per_key() -> None:
    async with FakeKie(KEY) as fake, serve(fake.app) as url:
        assert fake.status_limit is not None
        assert (fake.status_limit.limit, fake.status_limit.seconds) == (10, 1.0)
        provider = KieProvider(KEY, api_url=url, upload_url=url)
        task_id = await provider.create(video_request())
        auth = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=url, headers=auth) as http:
            started = time.monotonic()
            codes = await poll(http, [task_id] * 11)
            assert time.monotonic() - started < 1.0, "too slow a machine for this test"
            with pytest.raises(RateLimitError) as limited:
                await provider.fetch(task_id)
            fake.status_limit = SlidingWindow(2, 0.2)
            again = await poll(http, [task_id] * 3)
            await asyncio.sleep(0.25)
            later = await poll(http, [task_id])
        await provider.aclose()
    assert codes == [200] * 10 + [429]
    assert limited.value.retryable and limited.value.retry_after == 1.0
    assert (again, later) == ([200, 200, 429], [200])
    assert fake.polls(task_id) == 16  # refused queries are counted too
