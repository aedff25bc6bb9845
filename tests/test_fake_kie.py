"""The kie.ai fake behaves like kie.ai towards a plain httpx client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import until
from tests.fakes.kie import DEFAULT_VIDEO, FakeKie
from tests.fakes.server import serve

KEY = "kie-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\r\n--x\r\n\xff\xd9"


# One server pair serves the whole module: each uvicorn shutdown costs 0.1-0.3 s.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Kie:
    fake: FakeKie
    url: str
    http: httpx.AsyncClient


@dataclass
class Receiver:
    """A tiny callback endpoint that records what it receives."""

    url: str = ""
    received: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 200

    async def endpoint(self, request: Request) -> JSONResponse:
        """Record one callback and answer `status`."""
        self.received.append((dict(request.headers), await request.json()))
        self.arrived.set()
        return JSONResponse({"ok": self.status == 200}, status_code=self.status)


class Switchboard:
    """An ASGI app that forwards to the current test's fake."""

    def __init__(self) -> None:
        self.target: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.target is not None
        await self.target(scope, receive, send)


@dataclass
class Servers:
    switchboard: Switchboard
    kie_url: str
    receiver: Receiver


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers() -> AsyncIterator[Servers]:
    switchboard = Switchboard()
    receiver = Receiver()
    callback_app = Starlette(routes=[Route("/kie/callback", receiver.endpoint, methods=["POST"])])
    async with serve(switchboard) as kie_url, serve(callback_app) as callback_url:
        receiver.url = f"{callback_url}/kie/callback"
        yield Servers(switchboard, kie_url, receiver)


@pytest_asyncio.fixture(loop_scope="module")
async def kie(servers: Servers) -> AsyncIterator[Kie]:
    fake = FakeKie(KEY, hmac_key="hmac-secret")
    servers.switchboard.target = fake.app
    # A fresh connection per request keeps the tests fast whatever the server's Nagle setting.
    limits = httpx.Limits(max_keepalive_connections=0)
    try:
        async with httpx.AsyncClient(base_url=servers.kie_url, headers=AUTH, limits=limits) as http:
            yield Kie(fake, servers.kie_url, http)
    finally:
        await fake.aclose()
        servers.switchboard.target = None


@pytest_asyncio.fixture(loop_scope="module")
async def receiver(servers: Servers) -> Receiver:
    servers.receiver.received.clear()
    servers.receiver.arrived.clear()
    servers.receiver.status = 200
    return servers.receiver


@pytest.fixture
def server_errors(monkeypatch: pytest.MonkeyPatch) -> list[logging.LogRecord]:
    """What uvicorn and asyncio log at WARNING or above during the test."""
    records: list[logging.LogRecord] = []
    for name in ("uvicorn.error", "asyncio"):
        logger = logging.getLogger(name)

        def handle(record: logging.LogRecord, original: Any = logger.handle) -> None:
            if record.levelno >= logging.WARNING:
                records.append(record)
            original(record)

        # Patched on the logger itself: uvicorn's dictConfig drops handlers added to it.
        monkeypatch.setattr(logger, "handle", handle)
    return records


async def upload(kie: Kie, data: bytes = JPEG, name: str = "photo.jpg") -> dict[str, Any]:
    response = await kie.http.post(
        "/api/file-stream-upload",
        files={"file": (name, data, "image/jpeg")},
        data={"uploadPath": "kling-bot/images", "fileName": name},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["success"] is True and body["code"] == 200
    return body


async def create(kie: Kie, payload: dict[str, Any]) -> dict[str, Any]:
    response = await kie.http.post("/api/v1/jobs/createTask", json=payload)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def record(kie: Kie, task_id: str) -> dict[str, Any]:
    response = await kie.http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def kling26(url: str, **extra: Any) -> dict[str, Any]:
    inp = {"prompt": "a cat waves", "image_urls": [url], "sound": False, "duration": "5"}
    return {"model": "kling-2.6/image-to-video", "input": {**inp, **extra}}


async def new_task(kie: Kie, callback_url: str | None = None) -> str:
    url = (await upload(kie))["data"]["downloadUrl"]
    payload = kling26(url) | ({"callBackUrl": callback_url} if callback_url else {})
    body = await create(kie, payload)
    assert body["code"] == 200, body
    task_id: str = body["data"]["taskId"]
    return task_id


def expected_signature(task_id: str, timestamp: str, key: str = "hmac-secret") -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def test_upload_create_poll_and_download(kie: Kie) -> None:
    kie.fake.video = bytes(range(256)) * 700  # larger than one streamed chunk
    uploaded = (await upload(kie))["data"]
    assert uploaded["fileName"] == "photo.jpg"
    assert uploaded["filePath"] == "kling-bot/images/photo.jpg"
    assert uploaded["fileSize"] == len(JPEG) and uploaded["mimeType"] == "image/jpeg"
    assert uploaded["downloadUrl"] == f"{kie.url}/files/kling-bot/images/photo.jpg"
    assert kie.fake.uploads == {"kling-bot/images/photo.jpg": JPEG}
    hosted = await kie.http.get(uploaded["downloadUrl"], headers={"Authorization": ""})
    assert hosted.content == JPEG and hosted.headers["content-type"] == "image/jpeg"

    kie.fake.finish_after = 0.15
    payload = kling26(uploaded["downloadUrl"], sound=True, duration="10")
    created = await create(kie, payload)
    assert created["code"] == 200 and created["msg"] == "success"
    task_id = created["data"]["taskId"]
    assert task_id.startswith("task_kling_")

    states = [(await record(kie, task_id))["data"]["state"] for _ in range(3)]
    assert states == ["waiting", "queuing", "generating"]
    await asyncio.sleep(0.2)
    info = await record(kie, task_id)
    data = info["data"]
    assert info["code"] == 200 and data["state"] == "success"
    assert data["taskId"] == task_id and data["model"] == "kling-2.6/image-to-video"
    assert json.loads(data["param"]) == payload
    assert data["failCode"] is None and data["failMsg"] is None
    assert data["costTime"] >= 150 and data["completeTime"] >= data["createTime"]
    [result_url] = json.loads(data["resultJson"])["resultUrls"]
    assert result_url == f"{kie.url}/results/{task_id}.mp4"
    assert kie.fake.polls(task_id) == 4 and kie.fake.polls() == 4
    assert kie.fake.tasks[task_id].input == payload["input"]

    response = await kie.http.get(result_url)
    assert response.status_code == 200
    assert response.content == kie.fake.video
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["content-length"] == str(len(kie.fake.video))


async def test_default_video_looks_like_mp4(kie: Kie) -> None:
    assert DEFAULT_VIDEO[4:12] == b"ftypmp42"
    task_id = await new_task(kie)
    assert (await kie.http.get(f"/results/{task_id}.mp4")).status_code == 404
    await kie.fake.complete(task_id)
    response = await kie.http.get(f"/results/{task_id}.mp4")
    assert response.content == DEFAULT_VIDEO


async def test_base64_upload(kie: Kie) -> None:
    raw = base64.b64encode(JPEG).decode()
    plain = await kie.http.post(
        "/api/file-base64-upload",
        json={"base64Data": raw, "uploadPath": "imgs", "fileName": "a.jpg"},
    )
    assert plain.json()["data"]["mimeType"] == "image/jpeg"
    assert kie.fake.uploads["imgs/a.jpg"] == JPEG

    data_url = await kie.http.post(
        "/api/file-base64-upload",
        json={"base64Data": f"data:image/png;base64,{raw}", "uploadPath": "/imgs/"},
    )
    body = data_url.json()["data"]
    assert body["mimeType"] == "image/png" and body["fileName"].endswith(".png")
    assert (await kie.http.get(body["downloadUrl"])).content == JPEG

    for bad in ({"uploadPath": "imgs"}, {"base64Data": "!!notbase64", "uploadPath": "imgs"}):
        refused = await kie.http.post("/api/file-base64-upload", json=bad)
        assert refused.status_code == 200
        assert refused.json()["code"] == 400 and refused.json()["success"] is False
    missing = await kie.http.post("/api/file-stream-upload", data={"uploadPath": "imgs"})
    assert missing.json()["code"] == 400


async def test_validation_errors_answer_422_with_http_200(kie: Kie) -> None:
    url = (await upload(kie))["data"]["downloadUrl"]
    telegram = "https://api.telegram.org/file/bot123:abc/photos/file_1.jpg"
    bad_payloads = [
        kling26(url, image_urls=[url, url]),
        kling26(telegram),
        kling26(url, prompt="x" * 1001),
        kling26(url, duration=5),
        {"model": "kling-2.6/image-to-video", "input": {"prompt": "p", "image_urls": [url]}},
        {"model": "kling/v9", "input": {"prompt": "p", "image_url": url}},
        {"model": "kling/v2-1-pro", "input": {"prompt": "p", "image_url": url, "cfg_scale": 1.5}},
        {
            "model": "kling/v2-1-pro",
            "input": {"prompt": "p", "image_url": url, "tail_image_url": telegram},
        },
        {
            "model": "kling/v2-1-pro",
            "input": {"prompt": "p", "image_url": url, "negative_prompt": "n" * 501},
        },
        {
            "model": "kling/v2-5-turbo-image-to-video-pro",
            "input": {"prompt": "p" * 2501, "image_url": url},
        },
    ]
    for payload in bad_payloads:
        body = await create(kie, payload)
        assert body["code"] == 422 and body["data"] is None, payload
    assert (await create(kie, kling26(telegram)))["msg"] == "image url not accessible"
    assert kie.fake.tasks == {}

    good = [
        kling26(url, prompt="x" * 1000, sound=True),
        {
            "model": "kling/v2-1-pro",
            "input": {
                "prompt": "p" * 5000,
                "image_url": url,
                "duration": "10",
                "cfg_scale": 0,
                "negative_prompt": "n" * 500,
                "tail_image_url": url,
            },
        },
        {
            "model": "kling/v2-5-turbo-image-to-video-pro",
            "input": {"prompt": "p", "image_url": url, "tail_image_url": "", "cfg_scale": 0.5},
        },
    ]
    for payload in good:
        assert (await create(kie, payload))["code"] == 200, payload
    assert len(kie.fake.tasks) == 3
    assert len(kie.fake.creates()) == len(bad_payloads) + 1 + len(good)


async def test_auth(kie: Kie) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        for method, path in [
            ("POST", "/api/v1/jobs/createTask"),
            ("GET", "/api/v1/jobs/recordInfo?taskId=x"),
            ("GET", "/api/v1/chat/credit"),
            ("POST", "/api/file-base64-upload"),
        ]:
            response = await kie.http.request(method, path, headers=headers, json={})
            assert response.status_code == 401
            assert response.json()["code"] == 401
    assert not kie.fake.tasks and not kie.fake.uploads
    credit = await kie.http.get("/api/v1/chat/credit")
    assert credit.json() == {"code": 200, "msg": "success", "data": 1234}


async def test_fail_next(kie: Kie) -> None:
    url = (await upload(kie))["data"]["downloadUrl"]
    kie.fake.fail_next("createTask", code=402, msg="insufficient credits", times=2)
    for _ in range(2):
        assert await create(kie, kling26(url)) == {
            "code": 402,
            "msg": "insufficient credits",
            "data": None,
        }
    assert not kie.fake.tasks
    task_id = (await create(kie, kling26(url)))["data"]["taskId"]

    kie.fake.fail_next("recordInfo", code=500, msg="boom", http_status=503)
    failed = await kie.http.get("/api/v1/jobs/recordInfo", params={"taskId": task_id})
    assert failed.status_code == 503 and failed.json()["code"] == 500
    assert (await record(kie, task_id))["code"] == 200

    kie.fake.fail_next("credit", code=455, msg="maintenance")
    assert (await kie.http.get("/api/v1/chat/credit")).json()["code"] == 455
    kie.fake.fail_next("upload", code=500, http_status=502)
    refused = await kie.http.post(
        "/api/file-base64-upload", json={"base64Data": "AAAA", "uploadPath": "x"}
    )
    assert refused.status_code == 502 and refused.json()["success"] is False
    with pytest.raises(ValueError):
        kie.fake.fail_next("download", code=500)

    unknown = await record(kie, "task_kling_nope")
    assert unknown["code"] == 404 and unknown["msg"] == "task not found"


async def test_complete_sends_signed_callbacks(kie: Kie, receiver: Receiver) -> None:
    kie.fake.callback_times = 2
    task_id = await new_task(kie, receiver.url)
    await kie.fake.complete(task_id)

    assert kie.fake.callbacks_sent == [(receiver.url, 200), (receiver.url, 200)]
    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        timestamp = headers["x-webhook-timestamp"]
        assert headers["x-webhook-signature"] == expected_signature(task_id, timestamp)
        assert body["code"] == 200 and body["data"]["taskId"] == task_id
        assert body["data"]["state"] == "success"
        assert json.loads(body["data"]["resultJson"])["resultUrls"] == [
            f"{kie.url}/results/{task_id}.mp4"
        ]
    assert body["data"] == (await record(kie, task_id))["data"]


async def test_complete_failure(kie: Kie, receiver: Receiver) -> None:
    task_id = await new_task(kie, receiver.url)
    await kie.fake.complete(task_id, success=False, fail_msg="nsfw", fail_code="422")
    [(_, body)] = receiver.received
    assert body["code"] == 501 and body["data"]["state"] == "fail"
    data = (await record(kie, task_id))["data"]
    assert data["state"] == "fail" and data["failMsg"] == "nsfw" and data["failCode"] == "422"
    assert data["resultJson"] == ""
    assert (await kie.http.get(f"/results/{task_id}.mp4")).status_code == 404


async def test_finish_after_fires_callback_without_polling(kie: Kie, receiver: Receiver) -> None:
    kie.fake.finish_after = 0.05
    kie.fake.outcome = "fail"
    task_id = await new_task(kie, receiver.url)
    await asyncio.wait_for(receiver.arrived.wait(), 1)
    [(headers, body)] = receiver.received
    assert body["code"] == 501 and body["data"]["failMsg"] == "content moderation failed"
    assert headers["x-webhook-signature"] == expected_signature(
        task_id, headers["x-webhook-timestamp"]
    )
    assert kie.fake.tasks[task_id].state == "fail" and kie.fake.polls(task_id) == 0


async def test_unreachable_callback_is_recorded_not_raised(kie: Kie) -> None:
    task_id = await new_task(kie, "http://127.0.0.1:9/kie/callback")
    await kie.fake.complete(task_id)
    assert kie.fake.callbacks_sent == [("http://127.0.0.1:9/kie/callback", 0)]


async def test_requests_are_recorded(kie: Kie) -> None:
    await new_task(kie)
    upload_request, create_request = kie.fake.requests
    assert upload_request.path == "/api/file-stream-upload" and upload_request.json is None
    assert JPEG in upload_request.body
    assert create_request.method == "POST" and isinstance(create_request.json, dict)
    assert create_request.json["model"] == "kling-2.6/image-to-video"
    assert create_request.headers["authorization"] == f"Bearer {KEY}"
    await kie.http.get("/api/v1/jobs/recordInfo", params={"taskId": "abc"})
    assert kie.fake.requests[-1].query == {"taskId": "abc"}


async def test_complete_before_deadline_wins_and_aclose_cancels_timers(
    kie: Kie, receiver: Receiver
) -> None:
    kie.fake.finish_after = 0.05
    early = await new_task(kie, receiver.url)
    await kie.fake.complete(early, success=False)
    await asyncio.sleep(0.08)
    assert [body["code"] for _, body in receiver.received] == [501]
    assert kie.fake.tasks[early].state == "fail"

    kie.fake.finish_after = 30
    await new_task(kie, receiver.url)
    before = len(asyncio.all_tasks())
    await kie.fake.aclose()
    assert len(asyncio.all_tasks()) == before - 1
    await kie.fake.aclose()


CREDIT = "/api/v1/chat/credit"


async def test_hold_before_create_does_nothing_until_released(kie: Kie) -> None:
    url = (await upload(kie))["data"]["downloadUrl"]
    hold = kie.fake.hold("createTask")
    first = asyncio.create_task(create(kie, kling26(url)))
    await asyncio.wait_for(hold.arrived.wait(), 1)
    assert len(kie.fake.creates()) == 1 and kie.fake.tasks == {}
    assert (hold.count, hold.waiting) == (1, 1)
    # A held request blocks nothing else, not even another held one.
    assert (await kie.http.get(CREDIT)).json()["data"] == 1234
    second = asyncio.create_task(create(kie, kling26(url)))
    await hold.wait(2)
    assert kie.fake.tasks == {} and not first.done()

    hold.release()
    ids = {(await task)["data"]["taskId"] for task in (first, second)}
    assert ids == set(kie.fake.tasks) and len(ids) == 2
    assert (hold.count, hold.waiting) == (2, 0)
    assert (await create(kie, kling26(url)))["code"] == 200
    assert hold.count == 2


async def test_hold_times_and_order_of_holds(kie: Kie) -> None:
    first = kie.fake.hold("credit", times=2)
    second = kie.fake.hold("credit", times=1)
    held = [asyncio.create_task(kie.http.get(CREDIT)) for _ in range(3)]
    await first.wait(2)
    await second.wait(1)
    assert (await kie.http.get(CREDIT)).status_code == 200  # the fourth passes
    assert (first.count, second.count) == (2, 1) and not any(t.done() for t in held)
    second.release()
    await until(lambda: sum(t.done() for t in held) == 1)
    first.release()
    assert [(await t).json()["data"] for t in held] == [1234] * 3
    with pytest.raises(ValueError):
        kie.fake.hold("download")
    with pytest.raises(ValueError):
        kie.fake.hold("credit", times=0)
    with pytest.raises(ValueError):
        kie.fake.delay("credit", -1)


async def test_hold_after_create_keeps_the_task_but_not_the_answer(kie: Kie) -> None:
    url = (await upload(kie))["data"]["downloadUrl"]
    hold = kie.fake.hold("createTask", after=True, times=1)
    held = asyncio.create_task(create(kie, kling26(url)))
    await asyncio.wait_for(hold.arrived.wait(), 1)
    [task_id] = kie.fake.tasks
    passed = await create(kie, kling26(url))
    assert passed["code"] == 200 and len(kie.fake.tasks) == 2 and not held.done()
    hold.release()
    assert (await held)["data"]["taskId"] == task_id


async def test_held_result_download_arrives_whole_after_release(kie: Kie) -> None:
    kie.fake.video = bytes(range(256)) * 700  # larger than one streamed chunk
    task_id = await new_task(kie)
    await kie.fake.complete(task_id)
    hold = kie.fake.hold("result", after=True)
    download = asyncio.create_task(kie.http.get(f"/results/{task_id}.mp4"))
    await hold.wait()
    await asyncio.sleep(0.05)
    assert not download.done()
    hold.release()
    response = await download
    assert response.status_code == 200 and response.content == kie.fake.video


async def test_held_requests_whose_client_leaves_end_quietly(
    kie: Kie, server_errors: list[logging.LogRecord]
) -> None:
    task_id = await new_task(kie)
    before = kie.fake.hold("recordInfo")
    after = kie.fake.hold("upload", after=True)
    baseline = len(asyncio.all_tasks())
    poll = asyncio.create_task(record(kie, task_id))
    store = asyncio.create_task(upload(kie, name="late.jpg"))
    await before.wait()
    await after.wait()
    # Cancelling closes the connections, as killing the bot would.
    poll.cancel()
    store.cancel()
    await until(lambda: before.waiting == after.waiting == 0)
    assert kie.fake.polls(task_id) == 0
    assert kie.fake.uploads["kling-bot/images/late.jpg"] == JPEG
    await until(lambda: len(asyncio.all_tasks()) <= baseline)
    before.release()
    assert (await record(kie, task_id))["code"] == 200
    assert server_errors == []


async def test_leaving_serve_answers_held_and_delayed_requests_503(
    server_errors: list[logging.LogRecord],
) -> None:
    fake = FakeKie(KEY)
    before = fake.hold("credit")
    after = fake.hold("upload", after=True)
    fake.delay("recordInfo", 30)
    upload_body = {"base64Data": base64.b64encode(JPEG).decode(), "uploadPath": "x"}
    async with httpx.AsyncClient(headers=AUTH) as http:
        async with serve(fake.app) as url:
            pending = [
                asyncio.create_task(http.get(f"{url}{CREDIT}")),
                asyncio.create_task(http.post(f"{url}/api/file-base64-upload", json=upload_body)),
                asyncio.create_task(http.get(f"{url}/api/v1/jobs/recordInfo?taskId=x")),
            ]
            await before.wait()
            await after.wait()
            await until(lambda: len(fake.requests) == 3)
            await asyncio.sleep(0.03)
            started = time.monotonic()
        assert time.monotonic() - started < 1.0
        for response in [await task for task in pending]:
            assert response.status_code == 503
            assert response.json() == {"code": 503, "msg": "Service Unavailable", "data": None}
    [stored] = fake.uploads  # the held upload was done, only its answer was lost
    assert stored.startswith("x/") and fake.uploads[stored] == JPEG
    await fake.aclose()
    assert server_errors == []


async def test_delay_answers_late_after_the_work(kie: Kie) -> None:
    url = (await upload(kie))["data"]["downloadUrl"]
    kie.fake.delay("createTask", 0.1, times=1)
    started = time.monotonic()
    pending = asyncio.create_task(create(kie, kling26(url)))
    await until(lambda: len(kie.fake.tasks) == 1)
    assert not pending.done()
    assert (await pending)["data"]["taskId"] in kie.fake.tasks
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    assert (await create(kie, kling26(url)))["code"] == 200
    assert time.monotonic() - started < 0.15

    kie.fake.delay("credit", 5)
    with pytest.raises(httpx.ReadTimeout):
        await kie.http.get(CREDIT, timeout=0.05)
    kie.fake.delay("credit", 0)
    assert (await kie.http.get(CREDIT, timeout=0.5)).status_code == 200


async def test_send_callback_any_state_leaves_the_task_alone(kie: Kie, receiver: Receiver) -> None:
    task_id = await new_task(kie, receiver.url)
    assert await kie.fake.send_callback(task_id, state="success") == [200]
    assert kie.fake.tasks[task_id].state == "waiting"
    await kie.fake.complete(task_id)
    receiver.status = 500
    assert await kie.fake.send_callback(task_id, state="generating", times=2) == [500, 500]
    receiver.status = 200
    assert await kie.fake.send_callback(task_id, state="fail") == [200]
    assert await kie.fake.send_callback(task_id) == [200]

    bodies = [body for _, body in receiver.received]
    states = [body["data"]["state"] for body in bodies]
    assert states == ["success", "success", "generating", "generating", "fail", "success"]
    early, _, stale, _, failed, current = bodies
    result_url = f"{kie.url}/results/{task_id}.mp4"
    assert early["code"] == 200 and json.loads(early["data"]["resultJson"]) == {
        "resultUrls": [result_url]
    }
    assert stale["code"] == 200 and stale["data"]["resultJson"] == ""
    assert stale["data"]["completeTime"] is None
    assert failed["code"] == 501 and failed["msg"] == "content moderation failed"
    assert (failed["data"]["failCode"], failed["data"]["resultJson"]) == ("500", "")
    assert current["data"] == (await record(kie, task_id))["data"]
    for headers, _ in receiver.received:
        timestamp = headers["x-webhook-timestamp"]
        assert headers["x-webhook-signature"] == expected_signature(task_id, timestamp)
    assert [status for _, status in kie.fake.callbacks_sent] == [200, 200, 500, 500, 200, 200]
    assert kie.fake.tasks[task_id].state == "success"

    with pytest.raises(ValueError, match="no callBackUrl"):
        await kie.fake.send_callback(await new_task(kie))


async def test_result_links_expire_and_download_url_gives_fresh_ones_as_kie_documents(
    kie: Kie,
) -> None:
    task_id = await new_task(kie)
    await kie.fake.complete(task_id)
    own = f"{kie.url}/results/{task_id}.mp4"

    async def fresh(url: str, **headers: str) -> dict[str, Any]:
        response = await kie.http.post(
            "/api/v1/common/download-url", json={"url": url}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    # The key is checked first, as on every kie endpoint.
    assert (await fresh(own, Authorization="Bearer wrong"))["code"] == 401
    # Only files kie made: another URL is refused with code 422 (HTTP 200).
    assert (await fresh("https://example.com/video.mp4"))["code"] == 422
    assert (await fresh(f"{kie.url}/results/task_kling_none.mp4"))["code"] == 422

    kie.fake.results_expired = True  # past the 24 h of the result's own URL
    assert (await kie.http.get(own)).status_code == 404
    body = await fresh(own)
    assert body["code"] == 200 and body["msg"] == "success"
    link = body["data"]
    assert isinstance(link, str) and link != own and kie.fake.fresh_links == [link]
    got = await kie.http.get(link, headers={"Authorization": ""})
    assert got.status_code == 200 and got.content == kie.fake.video

    kie.fake.results_deleted = True  # past the 14 days kie keeps media
    assert (await fresh(own))["code"] == 404
    assert (await kie.http.get(link)).status_code == 404
