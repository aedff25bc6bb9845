"""The Kling fake behaves like the official Kling API (and tu-zi) towards a plain httpx client."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.conftest import until
from tests.fakes.kling import DEFAULT_VIDEO, FakeKling
from tests.fakes.server import serve

ACCESS = "ak-test-0123456789"
SECRET = "sk-test-0123456789abcdef0123456789abcdef"  # >= 32 bytes: PyJWT warns on shorter
API_KEY = "tuzi-test-key"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
JPEG_B64 = base64.b64encode(JPEG).decode()
PNG_B64 = base64.b64encode(PNG).decode()
I2V = "/v1/videos/image2video"
MULTI = "/v1/videos/multi-image2video"

# One server pair serves the whole module: each uvicorn shutdown costs 0.1-0.3 s.
pytestmark = pytest.mark.asyncio(loop_scope="module")


def now_ms() -> int:
    """The time now in milliseconds, as Kling's costs endpoint takes it."""
    return int(time.time() * 1000)


def token(
    *,
    secret: str = SECRET,
    iss: str = ACCESS,
    exp_in: float = 1800,
    nbf_in: float = -5,
    headers: dict[str, Any] | None = None,
    algorithm: str = "HS256",
) -> str:
    now = time.time()
    claims = {"iss": iss, "exp": int(now + exp_in), "nbf": int(now + nbf_in)}
    return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)


@dataclass
class Receiver:
    """A tiny callback endpoint that records what it receives."""

    url: str = ""
    received: list[Any] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    status: int = 200

    async def endpoint(self, request: Request) -> JSONResponse:
        """Record one callback and answer `status`."""
        self.received.append(await request.json())
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
    url: str
    receiver: Receiver
    http: httpx.AsyncClient


@dataclass
class Kling:
    fake: FakeKling
    url: str  # what the bot would be configured with (prefix included)
    http: httpx.AsyncClient

    async def create(self, payload: Any, path: str = I2V) -> httpx.Response:
        return await self.http.post(path, json=payload)

    async def query(self, task_id: str, path: str = I2V) -> dict[str, Any]:
        response = await self.http.get(f"{path}/{task_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def servers() -> AsyncIterator[Servers]:
    switchboard = Switchboard()
    receiver = Receiver()
    callback_app = Starlette(routes=[Route("/kling/callback", receiver.endpoint, methods=["POST"])])
    # A fresh connection per request keeps the tests fast whatever the server's Nagle setting.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with (
        serve(switchboard) as url,
        serve(callback_app) as callback_url,
        # One client for the module: building one (its TLS context) costs ~35 ms.
        httpx.AsyncClient(limits=limits) as http,
    ):
        receiver.url = f"{callback_url}/kling/callback"
        yield Servers(switchboard, url, receiver, http)


@asynccontextmanager
async def attach(servers: Servers, fake: FakeKling, bearer: str) -> AsyncIterator[Kling]:
    """Point the switchboard at `fake` and yield a client that authenticates with `bearer`."""
    servers.switchboard.target = fake.app
    url = servers.url + fake.prefix
    http = servers.http
    http.base_url = httpx.URL(url)
    http.headers["Authorization"] = f"Bearer {bearer}"
    try:
        yield Kling(fake, url, http)
    finally:
        await fake.aclose()
        servers.switchboard.target = None


@pytest_asyncio.fixture(loop_scope="module")
async def kling(servers: Servers) -> AsyncIterator[Kling]:
    """The official API with JWT auth."""
    async with attach(servers, FakeKling(access_key=ACCESS, secret_key=SECRET), token()) as k:
        yield k


@pytest_asyncio.fixture(loop_scope="module")
async def tuzi(servers: Servers) -> AsyncIterator[Kling]:
    """tu-zi: the same shape under /kling, a static key and its stricter required fields."""
    fake = FakeKling(api_key=API_KEY, prefix="/kling", proxy_rules=True)
    async with attach(servers, fake, API_KEY) as k:
        yield k


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


def i2v(**extra: Any) -> dict[str, Any]:
    return {"model_name": "kling-v2-1", "mode": "std", "image": JPEG_B64, "prompt": "waves"} | extra


def tuzi_body(**extra: Any) -> dict[str, Any]:
    body = {
        "model_name": "kling-v1",
        "mode": "pro",
        "prompt": "the astronaut stands up",
        "aspect_ratio": "16:9",
        "duration": 5,
        "negative_prompt": "",
        "cfg_scale": 0.5,
        "image": JPEG_B64,
    }
    return body | extra


def multi(**extra: Any) -> dict[str, Any]:
    images = [{"image": JPEG_B64}, {"image": PNG_B64}]
    return {"model_name": "kling-v1-6", "image_list": images, "prompt": "mix"} | extra


async def new_task(k: Kling, **extra: Any) -> str:
    response = await k.create(i2v(**extra))
    assert response.status_code == 200, response.text
    task_id: str = response.json()["data"]["task_id"]
    return task_id


def assert_refused(response: httpx.Response, code: int, status: int, fragment: str = "") -> None:
    body = response.json()
    assert (response.status_code, body["code"], body["data"]) == (status, code, None), body
    assert fragment in body["message"], body["message"]
    assert body["request_id"]


async def test_jwt_create_poll_succeed_download(kling: Kling) -> None:
    kling.fake.video = bytes(range(256)) * 700  # larger than one streamed chunk
    response = await kling.create(i2v(external_task_id="ext-1", duration="10"))
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 0 and body["message"] == "SUCCEED" and len(body["request_id"]) == 36
    data = body["data"]
    assert data["task_status"] == "submitted" and data["task_info"] == {"external_task_id": "ext-1"}
    assert data["created_at"] == data["updated_at"] > 1_600_000_000_000
    task_id = data["task_id"]

    states = [(await kling.query(task_id))["data"]["task_status"] for _ in range(3)]
    assert states == ["submitted", "processing", "processing"]
    await kling.fake.complete(task_id)
    done = (await kling.query(task_id))["data"]
    assert done["task_status"] == "succeed" and done["task_status_msg"] == ""
    assert done["task_info"] == {"external_task_id": "ext-1"}
    assert done["updated_at"] >= done["created_at"]
    [video] = done["task_result"]["videos"]
    assert video["url"] == f"{kling.url}/results/{task_id}.mp4" and video["duration"] == "10"
    assert kling.fake.polls(task_id) == 4 and kling.fake.polls() == 4
    assert kling.fake.tasks[task_id].body["duration"] == "10"
    bearer = kling.http.headers["authorization"].removeprefix("Bearer ")
    assert kling.fake.jwt_tokens == [bearer] * 5

    download = await kling.http.get(video["url"], headers={"Authorization": ""})
    assert download.status_code == 200 and download.content == kling.fake.video
    assert download.headers["content-type"] == "video/mp4"
    assert download.headers["content-length"] == str(len(kling.fake.video))


async def test_default_video_and_pending_result(kling: Kling) -> None:
    task_id = await new_task(kling)
    assert (await kling.http.get(f"/results/{task_id}.mp4")).status_code == 404
    await kling.fake.complete(task_id)
    assert (await kling.http.get(f"/results/{task_id}.mp4")).content == DEFAULT_VIDEO


# Tokens are made when the test runs, not at collection: one valid for the next minute must
# not have become valid by the time a slow suite reaches it.
@pytest.mark.parametrize(
    ("make_bearer", "code", "fragment"),
    [
        pytest.param(lambda: token(exp_in=-10, nbf_in=-100), 1004, "expired", id="expired"),
        pytest.param(lambda: token(nbf_in=60), 1003, "not yet valid", id="not-yet-valid"),
        pytest.param(
            lambda: token(secret="another-secret-0123456789abcdef012345"),
            1000,
            "Signature",
            id="wrong-secret",
        ),
        pytest.param(lambda: token(exp_in=3600), 1000, "1800", id="lives-too-long"),
        pytest.param(lambda: token(iss="someone-else"), 1000, "issuer", id="wrong-issuer"),
        pytest.param(
            lambda: token(algorithm="HS512", secret=SECRET * 2),
            1000,
            "Authentication failed",
            id="hs512",
        ),
        pytest.param(lambda: token(headers={"typ": "JWS"}), 1000, "typ JWT", id="typ-jws"),
        pytest.param(
            lambda: jwt.encode({"iss": ACCESS, "exp": int(time.time()) + 60}, SECRET),
            1000,
            "nbf",
            id="no-nbf",
        ),
        pytest.param(lambda: "not.a.jwt", 1000, "Authentication failed", id="not-a-jwt"),
        pytest.param(lambda: API_KEY, 1000, "Authentication failed", id="static-key"),
    ],
)
async def test_bad_tokens_are_401(
    kling: Kling, make_bearer: Callable[[], str], code: int, fragment: str
) -> None:
    bearer = make_bearer()
    response = await kling.http.post(I2V, json=i2v(), headers={"Authorization": f"Bearer {bearer}"})
    assert_refused(response, code, 401, fragment)
    assert not kling.fake.tasks and not kling.fake.jwt_tokens


async def test_missing_or_odd_authorization(kling: Kling) -> None:
    for headers, code in (({"Authorization": ""}, 1001), ({"Authorization": "Basic x"}, 1000)):
        for method, path in (("GET", f"{I2V}/x"), ("GET", "/account/costs"), ("POST", MULTI)):
            response = await kling.http.request(method, path, headers=headers)
            assert_refused(response, code, 401)
    assert not kling.fake.jwt_tokens


async def test_renewed_tokens_are_recorded(kling: Kling) -> None:
    first, second = token(exp_in=1700), token(exp_in=1800)
    for bearer in (first, second):
        response = await kling.http.get(f"{I2V}/x", headers={"Authorization": f"Bearer {bearer}"})
        assert response.status_code == 404
    assert kling.fake.jwt_tokens == [first, second]


async def test_static_bearer_and_both_modes(servers: Servers) -> None:
    async with attach(servers, FakeKling(api_key=API_KEY), API_KEY) as k:
        assert (await k.create(i2v())).status_code == 200
        wrong = await k.http.post(I2V, json=i2v(), headers={"Authorization": "Bearer nope"})
        assert_refused(wrong, 1000, 401)
        assert len(k.fake.tasks) == 1 and k.fake.jwt_tokens == []
    both = FakeKling(access_key=ACCESS, secret_key=SECRET, api_key=API_KEY)
    async with attach(servers, both, API_KEY) as k:
        assert (await k.create(i2v())).status_code == 200
        jwt_auth = {"Authorization": f"Bearer {token()}"}
        assert (await k.http.post(I2V, json=i2v(), headers=jwt_auth)).status_code == 200
        assert len(k.fake.jwt_tokens) == 1
    with pytest.raises(ValueError):
        FakeKling(access_key=ACCESS)
    with pytest.raises(ValueError):
        FakeKling()


async def test_query_by_external_id_and_duplicates(kling: Kling) -> None:
    task_id = await new_task(kling, external_task_id="order 7 ü")
    by_external = await kling.http.get(f"{I2V}/order%207%20%C3%BC")
    assert by_external.json()["data"]["task_id"] == task_id
    assert kling.fake.polls(task_id) == 1
    duplicate = await kling.create(i2v(external_task_id="order 7 ü"))
    assert_refused(duplicate, 1201, 400, "external_task_id already exists")
    assert_refused(await kling.http.get(f"{I2V}/nope"), 1201, 404, "task not found")
    # A task is only found under its own kind.
    assert_refused(await kling.http.get(f"{MULTI}/{task_id}"), 1201, 404)
    assert list(kling.fake.tasks) == [task_id]


BAD_I2V: list[tuple[dict[str, Any], str]] = [
    (i2v(image=f"data:image/jpeg;base64,{JPEG_B64}"), "without a 'data:' prefix"),
    (i2v(image=base64.b64encode(b"GIF89a....").decode()), "jpg or png"),
    (i2v(image="not base64!"), "valid base64"),
    (i2v(image=JPEG_B64[:-2]), "valid base64"),
    (i2v(image="https://example.com/cat.jpg"), "could not be downloaded"),
    (i2v(image=""), "image is required"),
    ({"prompt": "no image"}, "image is required"),
    (i2v(model_name="kling-v9"), "model_name must be one of"),
    (i2v(mode="turbo"), "mode must be one of"),
    (i2v(prompt="p" * 2501), "prompt must be at most 2500"),
    (i2v(negative_prompt="n" * 2501), "negative_prompt must be at most 2500"),
    (i2v(model_name="kling-v1-6", cfg_scale=1.5), "cfg_scale must be a number between 0 and 1"),
    (i2v(model_name="kling-v1-6", cfg_scale=True), "cfg_scale must be a number"),
    (i2v(cfg_scale=0.5), "cfg_scale is not supported by kling-v2-1"),
    (i2v(model_name="kling-v2-5-turbo", cfg_scale=0), "not supported by kling-v2-5-turbo"),
    (i2v(sound="on"), "sound is not supported by kling-v2-1"),
    (i2v(model_name="kling-v2-6", sound=True), "sound must be one of"),
    (i2v(duration=5), 'a string "3" to "15"'),
    (i2v(duration="7"), "duration 7 is not supported by kling-v2-1"),
    (i2v(duration="16"), 'a string "3" to "15"'),
    (i2v(aspect_ratio="4:3"), "aspect_ratio must be one of"),
    (i2v(callback_url="ftp://x"), "callback_url must be an http(s) URL"),
    (i2v(external_task_id=""), "external_task_id must be a non-empty string"),
    (i2v(tail_image=JPEG_B64), "unknown parameter(s): tail_image"),
    (i2v(camera_control={"type": "zoom"}), "camera_control.type must be one of"),
    (i2v(camera_control={"type": "simple"}), "camera_control.config must use only"),
    (
        i2v(camera_control={"type": "simple", "config": {"zoom": 5, "pan": 1}}),
        "exactly one non-zero",
    ),
    (i2v(camera_control={"type": "simple", "config": {"zoom": 0}}), "exactly one non-zero"),
    (i2v(camera_control={"type": "simple", "config": {"zoom": 11}}), "in [-10, 10]"),
    (i2v(camera_control={"type": "simple", "config": {"value": 5}}), "must use only"),
    (i2v(camera_control={"type": "down_back", "config": {"zoom": 5}}), "only allowed with"),
    (i2v(image_tail=JPEG_B64, camera_control={"type": "down_back"}), "cannot be combined"),
    (i2v(image_tail=PNG_B64, static_mask=PNG_B64), "cannot be combined"),
    (i2v(static_mask=PNG_B64, camera_control={"type": "forward_up"}), "cannot be combined"),
    (i2v(static_mask="data:image/png;base64,AAAA"), "static_mask must be raw base64"),
    (i2v(dynamic_masks=[]), "1 to 6 masks"),
    (
        i2v(dynamic_masks=[{"mask": PNG_B64, "trajectories": [{"x": 1, "y": 2}] * 2}] * 7),
        "1 to 6 masks",
    ),
    (i2v(dynamic_masks=[{"mask": PNG_B64, "trajectories": [{"x": 1, "y": 2}]}]), "2 to 77"),
    (
        i2v(dynamic_masks=[{"mask": PNG_B64, "trajectories": [{"x": 1, "y": 2}] * 78}]),
        "2 to 77",
    ),
    (
        i2v(dynamic_masks=[{"mask": PNG_B64, "trajectories": [{"x": -1, "y": 2}] * 2}]),
        "non-negative integers",
    ),
    (
        i2v(dynamic_masks=[{"mask": PNG_B64, "trajectories": [{"x": 1.5, "y": 2}] * 2}]),
        "non-negative integers",
    ),
    (
        i2v(dynamic_masks=[{"mask": "AAAA", "trajectories": [{"x": 1, "y": 2}] * 2}]),
        "dynamic_masks[0].mask must be a jpg or png",
    ),
]


async def test_validation_refuses_with_1201(kling: Kling) -> None:
    for payload, fragment in BAD_I2V:
        assert_refused(await kling.create(payload), 1201, 400, fragment)
    assert kling.fake.tasks == {}
    assert len(kling.fake.creates()) == len(BAD_I2V)
    assert kling.fake.creates()[0].json == BAD_I2V[0][0]


async def test_body_must_be_a_json_object(kling: Kling) -> None:
    not_json = await kling.http.post(I2V, content=b'{"image": ', headers={"content-type": "text"})
    assert_refused(not_json, 1200, 400, "application/json")
    broken = await kling.http.post(
        I2V, content=b'{"image": ', headers={"content-type": "application/json"}
    )
    assert_refused(broken, 1200, 400, "not valid JSON")
    assert_refused(await kling.create([1, 2]), 1200, 400, "JSON object")


async def test_valid_variants_are_accepted(kling: Kling) -> None:
    kling.fake.files["masks/brush.png"] = PNG
    hosted = f"{kling.url}/files/masks/brush.png"
    assert (await kling.http.get(hosted)).content == PNG
    trajectory = [{"x": 0, "y": 0}, {"x": 10, "y": 20}]
    six = [{"mask": hosted, "trajectories": trajectory}] * 6
    good = [
        {"image": PNG_B64},  # model_name defaults to kling-v1
        i2v(model_name="kling-v1-6", cfg_scale=0, duration="5", negative_prompt=""),
        i2v(model_name="kling-v2-6", sound="off", mode="pro", aspect_ratio="9:16"),
        i2v(model_name="kling-v1", camera_control={"type": "simple", "config": {"zoom": -10}}),
        i2v(model_name="kling-v1", camera_control={"type": "left_turn_forward", "config": None}),
        i2v(image_tail=PNG_B64, mode="pro", prompt=None, callback_url="https://example.com/cb"),
        i2v(model_name="kling-v1", image=hosted, static_mask=hosted),
        i2v(model_name="kling-v1", dynamic_masks=six),
    ]
    for payload in good:
        response = await kling.create(payload)
        assert response.status_code == 200 and response.json()["code"] == 0, response.text
    assert len(kling.fake.tasks) == len(good)
    first = next(iter(kling.fake.tasks.values()))
    assert first.body == {"image": PNG_B64} and first.kind == "image2video"
    assert first.external_task_id is None and first.callback_url is None
    last_with_callback = list(kling.fake.tasks.values())[5]
    assert last_with_callback.callback_url == "https://example.com/cb"
    assert "prompt" not in last_with_callback.body  # null counts as absent


async def test_proxy_rules_under_prefix(tuzi: Kling) -> None:
    assert tuzi.url.endswith("/kling")
    ok = await tuzi.create(tuzi_body())
    assert ok.status_code == 200 and ok.json()["data"]["task_status"] == "submitted"
    for extra in ({"duration": "10"}, {"model_name": "kling-v1-6", "cfg_scale": 0.7}):
        assert (await tuzi.create(tuzi_body(**extra))).status_code == 200, extra
    # A proxy forwards to Kling, whose v2.x models take no cfg_scale (providers.md, D).
    v2_with_cfg = tuzi_body(model_name="kling-v2-1", cfg_scale=0.7)
    assert_refused(await tuzi.create(v2_with_cfg), 1201, 400, "cfg_scale is not supported")
    for name in ("model_name", "mode", "prompt", "aspect_ratio", "duration", "cfg_scale", "image"):
        without = {k: v for k, v in tuzi_body().items() if k != name}
        assert_refused(await tuzi.create(without), 1201, 400, f"{name} is required")
    without_negative = {k: v for k, v in tuzi_body().items() if k != "negative_prompt"}
    assert_refused(await tuzi.create(without_negative), 1201, 400, "negative_prompt is required")
    assert_refused(await tuzi.create(tuzi_body(prompt="")), 1201, 400, "prompt is required")
    assert_refused(await tuzi.create(tuzi_body(aspect_ratio="4:3")), 1201, 400, "aspect_ratio")
    assert_refused(await tuzi.create(tuzi_body(duration=7)), 1201, 400, "duration")
    assert_refused(await tuzi.create(tuzi_body(duration=True)), 1201, 400, "duration")
    assert len(tuzi.fake.tasks) == 3

    task_id = ok.json()["data"]["task_id"]
    assert (await tuzi.query(task_id))["data"]["task_id"] == task_id
    await tuzi.fake.complete(task_id)
    [video] = (await tuzi.query(task_id))["data"]["task_result"]["videos"]
    assert video["url"] == f"{tuzi.url}/results/{task_id}.mp4" and video["duration"] == "5"
    assert (await tuzi.http.get(video["url"])).content == DEFAULT_VIDEO
    # Without the prefix there is nothing: the bot's base URL must carry it.
    unprefixed = await tuzi.http.post(f"{tuzi.url.removesuffix('/kling')}{I2V}", json=tuzi_body())
    assert unprefixed.status_code == 404
    assert {r.path for r in tuzi.fake.creates()} == {"/kling" + I2V}
    assert tuzi.fake.creates()[0].headers["authorization"] == f"Bearer {API_KEY}"


async def test_multi_image_create_and_query(kling: Kling) -> None:
    response = await kling.create(multi(external_task_id="m-1", duration="10"), MULTI)
    assert response.status_code == 200, response.text
    task_id = response.json()["data"]["task_id"]
    assert kling.fake.tasks[task_id].kind == "multi-image2video"
    assert (await kling.query(task_id, MULTI))["data"]["task_status"] == "submitted"
    assert (await kling.query("m-1", MULTI))["data"]["task_status"] == "processing"
    await kling.fake.complete(task_id)
    done = (await kling.query(task_id, MULTI))["data"]
    assert done["task_status"] == "succeed" and done["task_result"]["videos"][0]["duration"] == "10"
    assert_refused(await kling.http.get(f"{I2V}/{task_id}"), 1201, 404)

    four = [{"image": JPEG_B64}] * 4
    assert (await kling.create(multi(image_list=four, model_name=None), MULTI)).status_code == 200
    bad = [
        (multi(image_list=[{"image": JPEG_B64}]), "2 to 4 images"),
        (multi(image_list=[*four, {"image": JPEG_B64}]), "2 to 4 images"),
        (multi(image_list=[JPEG_B64, JPEG_B64]), 'must be an object {"image": ...}'),
        (multi(image_list=[{"image": JPEG_B64}, {"image": "data:,x"}]), "image_list[1].image"),
        (multi(model_name="kling-v2-1"), "must be kling-v1-6"),
        (multi(prompt=None), "prompt is required"),
        (multi(duration=5), "duration"),
        (multi(cfg_scale=0.5), "unknown parameter(s): cfg_scale"),
    ]
    for payload, fragment in bad:
        assert_refused(await kling.create(payload, MULTI), 1201, 400, fragment)
    assert len(kling.fake.tasks) == 2 and len(kling.fake.creates()) == 2 + len(bad)


async def test_costs(kling: Kling) -> None:
    now = int(time.time() * 1000)
    response = await kling.http.get(
        "/account/costs", params={"start_time": now - 86_400_000, "end_time": now}
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["code"] == 0 and data["msg"] == ""
    [pack] = data["resource_pack_subscribe_infos"]
    assert pack["remaining_quantity"] == 42.0 and pack["total_quantity"] == 100.0
    assert pack["status"] == "online" and pack["resource_pack_type"] == "decreasing_total"
    refused: list[dict[str, str | int]] = [
        {"start_time": now},
        {"start_time": now // 1000, "end_time": now // 1000},
        {"start_time": "yesterday", "end_time": now},
        {"start_time": now, "end_time": now - 1},
    ]
    for params in refused:
        assert_refused(await kling.http.get("/account/costs", params=params), 1201, 400)
    assert (await kling.http.get("/v1/account/costs")).status_code == 404


async def test_fail_next(kling: Kling) -> None:
    kling.fake.fail_next("create", code=1303, message="parallel task over resource pack limit")
    refused = await kling.create(i2v())
    assert_refused(refused, 1303, 200, "parallel task")
    assert not kling.fake.tasks
    task_id = await new_task(kling)

    kling.fake.fail_next("query", code=5000, message="server error", http_status=500, times=2)
    for _ in range(2):
        assert_refused(await kling.http.get(f"{I2V}/{task_id}"), 5000, 500, "server error")
    assert (await kling.query(task_id))["data"]["task_status"] == "processing"
    assert kling.fake.polls(task_id) == 3

    kling.fake.fail_next("costs", code=1102, message="resource pack exhausted")
    costs = await kling.http.get("/account/costs", params={"start_time": 0, "end_time": 0})
    assert_refused(costs, 1102, 200, "exhausted")
    kling.fake.fail_next("multi_create", code=1301, http_status=400)
    assert_refused(await kling.create(multi(), MULTI), 1301, 400, "error")
    kling.fake.fail_next("multi_query", code=1302, http_status=429)
    assert_refused(await kling.http.get(f"{MULTI}/whatever"), 1302, 429)
    with pytest.raises(ValueError):
        kling.fake.fail_next("download", code=5000)


async def test_max_running_answers_1303(kling: Kling) -> None:
    kling.fake.max_running = 1
    task_id = await new_task(kling)
    assert_refused(await kling.create(i2v()), 1303, 429)
    await kling.fake.complete(task_id, success=False)
    assert (await kling.create(i2v())).status_code == 200


async def test_flat_callbacks_repeat(kling: Kling, receiver: Receiver) -> None:
    kling.fake.callback_times = 2
    task_id = await new_task(kling, callback_url=receiver.url, external_task_id="cb-1")
    await kling.fake.complete(task_id)
    assert kling.fake.callbacks_sent == [(receiver.url, 200), (receiver.url, 200)]
    first, second = receiver.received
    assert first == second == (await kling.query(task_id))["data"]
    assert first["task_status"] == "succeed" and first["task_info"]["external_task_id"] == "cb-1"


async def test_enveloped_callback_on_failure(kling: Kling, receiver: Receiver) -> None:
    kling.fake.callback_shape = "envelope"
    task_id = await new_task(kling, callback_url=receiver.url)
    await kling.fake.complete(task_id, success=False, message="content policy")
    [body] = receiver.received
    assert body["code"] == 0 and body["message"] == "SUCCEED" and body["request_id"]
    assert body["data"]["task_status"] == "failed"
    assert body["data"]["task_status_msg"] == "content policy"
    assert "task_result" not in body["data"]
    data = (await kling.query(task_id))["data"]
    assert data == body["data"] and kling.fake.tasks[task_id].result_url is None
    assert (await kling.http.get(f"/results/{task_id}.mp4")).status_code == 404


async def test_finish_after_fails_with_default_message(kling: Kling, receiver: Receiver) -> None:
    kling.fake.finish_after = 0.05
    kling.fake.outcome = "fail"
    task_id = await new_task(kling, callback_url=receiver.url)
    await asyncio.wait_for(receiver.arrived.wait(), 1)
    [body] = receiver.received
    assert body["task_status"] == "failed"
    assert body["task_status_msg"] == "Failure to pass the risk control system"
    assert kling.fake.polls(task_id) == 0 and kling.fake.tasks[task_id].completed is not None


async def test_finish_after_zero_succeeds_by_first_query(kling: Kling) -> None:
    kling.fake.finish_after = 0.0
    task_id = await new_task(kling)
    await asyncio.sleep(0)
    assert (await kling.query(task_id))["data"]["task_status"] == "succeed"


async def test_unreachable_callback_is_recorded_not_raised(kling: Kling) -> None:
    task_id = await new_task(kling, callback_url="http://127.0.0.1:9/cb")
    await kling.fake.complete(task_id)
    assert kling.fake.callbacks_sent == [("http://127.0.0.1:9/cb", 0)]


async def test_requests_are_recorded_and_aclose_cancels_timers(kling: Kling) -> None:
    await kling.http.get(f"{I2V}/abc", params={"x": "1"})
    [request] = kling.fake.requests
    assert request.method == "GET" and request.path == f"{I2V}/abc" and request.query == {"x": "1"}
    assert request.headers["authorization"].startswith("Bearer ey") and request.json is None

    kling.fake.finish_after = 30
    await new_task(kling)
    before = len(asyncio.all_tasks())
    await kling.fake.aclose()
    assert len(asyncio.all_tasks()) == before - 1
    await kling.fake.aclose()


async def test_hold_before_create_and_after_query_by_external_id(kling: Kling) -> None:
    hold = kling.fake.hold("create")
    held = asyncio.create_task(kling.create(i2v(external_task_id="ext-h")))
    await asyncio.wait_for(hold.arrived.wait(), 1)
    assert len(kling.fake.creates()) == 1 and kling.fake.tasks == {}
    now = now_ms()
    costs = await kling.http.get("/account/costs", params={"start_time": now, "end_time": now})
    assert costs.json()["code"] == 0  # a held request blocks nothing else
    hold.release()
    task_id = (await held).json()["data"]["task_id"]
    assert list(kling.fake.tasks) == [task_id] and (hold.count, hold.waiting) == (1, 0)

    answer = kling.fake.hold("query", after=True, times=1)
    query = asyncio.create_task(kling.query("ext-h"))
    await answer.wait()
    assert kling.fake.polls(task_id) == 1 and not query.done()
    assert (await kling.query("ext-h"))["data"]["task_status"] == "processing"
    answer.release()
    data = (await query)["data"]
    assert (data["task_id"], data["task_status"]) == (task_id, "submitted")
    assert_refused(await kling.http.get(f"{I2V}/ext-unknown"), 1201, 404, "task not found")
    with pytest.raises(ValueError):
        kling.fake.hold("download")
    with pytest.raises(ValueError):
        kling.fake.delay("query", 1, times=0)


async def test_held_requests_whose_client_leaves_end_quietly(
    kling: Kling, server_errors: list[logging.LogRecord]
) -> None:
    kling.fake.video = bytes(range(256)) * 700  # larger than one streamed chunk
    task_id = await new_task(kling)
    await kling.fake.complete(task_id)
    before = kling.fake.hold("multi_create")
    after = kling.fake.hold("result", after=True)
    baseline = len(asyncio.all_tasks())
    create = asyncio.create_task(kling.create(multi(), MULTI))
    download = asyncio.create_task(kling.http.get(f"/results/{task_id}.mp4"))
    await before.wait()
    await after.wait()
    # Cancelling closes the connections, as killing the bot would.
    create.cancel()
    download.cancel()
    await until(lambda: before.waiting == after.waiting == 0)
    await until(lambda: len(asyncio.all_tasks()) <= baseline)
    assert list(kling.fake.tasks) == [task_id]
    before.release()
    after.release()
    assert (await kling.create(multi(), MULTI)).status_code == 200
    video = await kling.http.get(f"/results/{task_id}.mp4")
    assert video.content == kling.fake.video
    assert server_errors == []


async def test_leaving_serve_answers_held_and_delayed_requests_503(
    servers: Servers, server_errors: list[logging.LogRecord]
) -> None:
    fake = FakeKling(api_key=API_KEY, prefix="/kling", proxy_rules=True)
    held = fake.hold("query")
    fake.delay("costs", 30)
    async with serve(fake.app) as root:
        http = servers.http
        auth = {"Authorization": f"Bearer {API_KEY}"}
        now = now_ms()
        params = {"start_time": now, "end_time": now}
        pending = [
            asyncio.create_task(http.get(f"{root}/kling{I2V}/anything", headers=auth)),
            asyncio.create_task(
                http.get(f"{root}/kling/account/costs", params=params, headers=auth)
            ),
        ]
        await held.wait()
        await until(lambda: len(fake.requests) == 2)
        await asyncio.sleep(0.03)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    for response in [await task for task in pending]:
        assert_refused(response, 5001, 503, "Service Unavailable")
    await fake.aclose()
    assert server_errors == []


async def test_delay_answers_late(kling: Kling) -> None:
    task_id = await new_task(kling)
    kling.fake.delay("query", 0.1, times=1)
    started = time.monotonic()
    assert (await kling.query(task_id))["data"]["task_status"] == "submitted"
    assert time.monotonic() - started >= 0.1
    started = time.monotonic()
    await kling.query(task_id)
    assert time.monotonic() - started < 0.1 and kling.fake.polls(task_id) == 2

    kling.fake.delay("create", 5)
    with pytest.raises(httpx.ReadTimeout):
        await kling.http.post(I2V, json=i2v(), timeout=0.05)
    kling.fake.delay("create", 0)
    assert len(kling.fake.tasks) == 2  # the late answer's task was created all the same


async def test_send_callback_any_state_leaves_the_task_alone(
    kling: Kling, receiver: Receiver
) -> None:
    task_id = await new_task(kling, callback_url=receiver.url)
    assert await kling.fake.send_callback(task_id, state="succeed") == [200]
    assert kling.fake.tasks[task_id].status == "submitted"
    await kling.fake.complete(task_id)
    receiver.status = 500
    assert await kling.fake.send_callback(task_id, state="processing", times=2) == [500, 500]
    receiver.status = 200
    kling.fake.callback_shape = "envelope"
    assert await kling.fake.send_callback(task_id, state="failed") == [200]
    assert await kling.fake.send_callback(task_id) == [200]

    early, completed, stale, _, failed, current = receiver.received
    result_url = f"{kling.url}/results/{task_id}.mp4"
    assert early["task_status"] == "succeed"
    assert early["task_result"]["videos"][0]["url"] == result_url
    assert completed["task_status"] == "succeed"
    assert stale["task_status"] == "processing" and "task_result" not in stale
    assert failed["code"] == 0 and failed["data"]["task_status"] == "failed"
    assert failed["data"]["task_status_msg"] == "Failure to pass the risk control system"
    assert current["data"] == (await kling.query(task_id))["data"]
    assert current["data"]["task_status"] == "succeed"
    assert [status for _, status in kling.fake.callbacks_sent] == [200, 200, 500, 500, 200, 200]

    with pytest.raises(ValueError, match="no callback_url"):
        await kling.fake.send_callback(await new_task(kling))


TAIL = {"image_tail": PNG_B64}
SIMPLE = {"camera_control": {"type": "simple", "config": {"zoom": 5}}}
PRESET = {"camera_control": {"type": "forward_up"}}
BRUSH = {"static_mask": PNG_B64}


@pytest.mark.parametrize(
    ("model", "mode", "duration", "extra"),
    [
        # What the official capability map refuses (providers.md, section D).
        ("kling-v1-6", "std", "5", SIMPLE),  # no camera moves on 1.6
        ("kling-v1-6", "pro", "5", BRUSH),  # no motion brush on 1.6
        ("kling-v1", "pro", "5", SIMPLE),  # camera: std 5 s only
        ("kling-v1", "std", "10", SIMPLE),
        ("kling-v1", "std", "10", TAIL),  # end frame: 5 s only
        ("kling-v1", "pro", "10", BRUSH),  # motion brush: 5 s only
        ("kling-v1-5", "std", "5", SIMPLE),  # camera: pro 5 s, simple only
        ("kling-v1-5", "pro", "10", SIMPLE),
        ("kling-v1-5", "pro", "5", PRESET),
        ("kling-v1-5", "std", "5", TAIL),  # end frame: pro only
        ("kling-v1-5", "std", "5", BRUSH),  # motion brush: pro 5 s only
        ("kling-v1-6", "std", "5", TAIL),
        ("kling-v2-1", "std", "5", TAIL),
        ("kling-v2-5-turbo", "std", "10", TAIL),
        ("kling-v2-6", "std", "5", TAIL),
        ("kling-v2-6", "std", "5", {"sound": "on"}),  # sound on needs pro
        ("kling-v2-6", "pro", "5", {**TAIL, "sound": "on"}),  # end frame, then no sound
        ("kling-v2-master", "std", "5", TAIL),
        ("kling-v2-1", "pro", "5", {"cfg_scale": 0.5}),  # no v2.x takes cfg_scale
    ],
)
async def test_the_capability_map_refuses_with_1201(
    kling: Kling, model: str, mode: str, duration: str, extra: dict[str, Any]
) -> None:
    body = i2v(model_name=model, mode=mode, duration=duration, **extra)
    assert_refused(await kling.create(body), 1201, 400, "not supported")
    assert not kling.fake.tasks


@pytest.mark.parametrize(
    ("model", "mode", "duration", "extra"),
    [
        ("kling-v1", "std", "5", SIMPLE),
        ("kling-v1", "std", "5", PRESET),
        ("kling-v1", "pro", "5", TAIL),
        ("kling-v1", "std", "5", BRUSH),
        ("kling-v1-5", "pro", "5", SIMPLE),
        ("kling-v1-5", "pro", "10", TAIL),
        ("kling-v1-5", "pro", "5", BRUSH),
        ("kling-v2-1", "pro", "10", TAIL),
        ("kling-v2-6", "pro", "10", {"sound": "on"}),
        ("kling-v2-6", "std", "5", {"sound": "off"}),
        ("kling-v2-6", "pro", "5", {**TAIL, "sound": "off"}),
    ],
)
async def test_the_capability_map_accepts(
    kling: Kling, model: str, mode: str, duration: str, extra: dict[str, Any]
) -> None:
    body = i2v(model_name=model, mode=mode, duration=duration, **extra)
    response = await kling.create(body)
    assert response.status_code == 200, response.text


async def test_only_kling_v3_takes_lengths_other_than_5_and_10(kling: Kling) -> None:
    refused = await kling.http.post(MULTI, json=multi(duration="7"))
    assert_refused(refused, 1201, 400, "duration 7 is not supported by kling-v1-6")
    for seconds in ("3", "7", "15"):
        response = await kling.create(i2v(model_name="kling-v3", duration=seconds))
        assert response.status_code == 200, response.text
