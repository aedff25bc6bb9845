"""The official-shape client (Kling and tu-zi) against an httpx mock transport."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from PIL import Image

from bot.providers.base import (
    CameraMove,
    DynamicMask,
    ImageFile,
    ProviderState,
    TrajectoryPoint,
    VideoRequest,
)
from bot.providers.camera import PRESETS
from bot.providers.errors import (
    AuthenticationError,
    CallbackRejectedError,
    ContentRejectedError,
    FirewallBlockedError,
    InsufficientCreditsError,
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.kling import official_kling
from bot.providers.kling_wire import OfficialShapeProvider
from bot.providers.tuzi import tuzi


def image(width: int = 1280, height: int = 720) -> ImageFile:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "red").save(out, "PNG")
    return ImageFile(
        data=out.getvalue(), mime_type="image/png", file_name="a.png", width=width, height=height
    )


START, END = image(), image(640, 640)
SECRET = "kling-secret-key-0123456789abcdef0123"


def request(**extra: Any) -> VideoRequest:
    fields: dict[str, Any] = {
        "model": "kling-v1-6",
        "prompt": "a cat blinks",
        "image": START,
        "duration": 5,
        "external_id": "kb7",
    }
    fields.update(extra)
    return VideoRequest.model_validate(fields)


def ok(data: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"code": 0, "message": "SUCCEED", "request_id": "r", "data": data}
    )


def error(code: int, status: int = 400, **headers: str) -> httpx.Response:
    body = {"code": code, "message": f"code {code}", "request_id": "r", "data": None}
    return httpx.Response(status, json=body, headers=headers)


Handler = Callable[[httpx.Request], httpx.Response]


def recorder(handler: Handler) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    return httpx.MockTransport(record), seen


def created(req: httpx.Request) -> httpx.Response:
    return ok({"task_id": "T1", "task_status": "submitted"})


def kling(handler: Handler, **auth: str) -> tuple[OfficialShapeProvider, list[httpx.Request]]:
    transport, seen = recorder(handler)
    keys = auth or {"access_key": "AK", "secret_key": SECRET}
    return official_kling("https://kling.test", transport=transport, **keys), seen


async def test_jwt_has_kling_claims_and_verifies_with_pyjwt() -> None:
    provider, seen = kling(created)
    await provider.create(request())
    await provider.aclose()
    token = seen[0].headers["authorization"].removeprefix("Bearer ")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(
        token, SECRET, algorithms=["HS256"], options={"require": ["iss", "exp", "nbf"]}
    )
    now = time.time()
    assert claims["iss"] == "AK"
    assert now + 1700 < claims["exp"] <= now + 1801
    assert now - 10 < claims["nbf"] <= now


async def test_expired_token_code_renews_and_retries_once() -> None:
    answers = [error(1004, 401), created]

    def handler(req: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        return answer(req) if callable(answer) else answer

    provider, seen = kling(handler)
    assert await provider.create(request()) == "T1"
    await provider.aclose()
    assert len(seen) == 2
    assert seen[0].headers["authorization"] != seen[1].headers["authorization"]

    provider, seen = kling(lambda req: error(1004, 401))
    with pytest.raises(AuthenticationError):
        await provider.create(request())
    await provider.aclose()
    assert len(seen) == 2


async def test_plain_api_key_is_a_bearer() -> None:
    provider, seen = kling(created, api_key="plain-key")
    await provider.create(request())
    await provider.aclose()
    assert seen[0].headers["authorization"] == "Bearer plain-key"


async def test_image2video_body_is_the_official_shape() -> None:
    provider, seen = kling(created)
    await provider.create(
        request(
            mode="pro",
            negative_prompt="blur",
            cfg_scale=0.7,
            duration=10,
            tail_image=END,
            callback_url="https://me/cb/kling/7/s",
        )
    )
    await provider.aclose()
    req = seen[0]
    assert req.method == "POST" and req.url.path == "/v1/videos/image2video"
    body = json.loads(req.content)
    assert body == {
        "model_name": "kling-v1-6",
        "prompt": "a cat blinks",
        "duration": "10",
        "external_task_id": "kb7",
        "mode": "pro",
        "negative_prompt": "blur",
        "cfg_scale": 0.7,
        "callback_url": "https://me/cb/kling/7/s",
        "image": base64.b64encode(START.data).decode(),
        "image_tail": base64.b64encode(END.data).decode(),
    }
    assert not body["image"].startswith("data:")


async def test_sound_camera_and_motion_brush_fields() -> None:
    provider, seen = kling(created)
    await provider.create(request(model="kling-v2-6", sound=True))
    await provider.create(request(camera=PRESETS["zoom_in"]))
    await provider.create(request(camera=PRESETS["forward_up"]))
    mask = DynamicMask(
        mask=END, trajectories=(TrajectoryPoint(x=1, y=2), TrajectoryPoint(x=3, y=4))
    )
    await provider.create(request(static_mask=END, dynamic_masks=(mask,)))
    await provider.aclose()
    bodies = [json.loads(r.content) for r in seen]
    assert bodies[0]["sound"] == "on"
    assert bodies[1]["camera_control"] == {"type": "simple", "config": {"zoom": -5}}
    assert bodies[2]["camera_control"] == {"type": "forward_up"}
    assert bodies[3]["static_mask"] == base64.b64encode(END.data).decode()
    assert bodies[3]["dynamic_masks"] == [
        {
            "mask": base64.b64encode(END.data).decode(),
            "trajectories": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
        }
    ]


def test_requests_refuse_what_kling_cannot_combine() -> None:
    mask = DynamicMask(
        mask=END, trajectories=(TrajectoryPoint(x=1, y=2), TrajectoryPoint(x=3, y=4))
    )
    with pytest.raises(ValueError, match="cannot be combined"):
        request(tail_image=END, camera=PRESETS["pan_left"])
    with pytest.raises(ValueError, match="cannot be combined"):
        request(camera=PRESETS["pan_left"], dynamic_masks=(mask,))
    with pytest.raises(ValueError):
        request(dynamic_masks=(mask,) * 7)
    with pytest.raises(ValueError):
        DynamicMask(mask=END, trajectories=(TrajectoryPoint(x=1, y=2),))
    with pytest.raises(ValueError):
        TrajectoryPoint(x=-1, y=0)
    with pytest.raises(ValueError):
        CameraMove(type="simple")
    with pytest.raises(ValueError):
        CameraMove(type="simple", axis="zoom", amount=11)
    with pytest.raises(ValueError):
        request(reference_images=(START,))


async def test_multi_image_goes_to_its_endpoint_and_is_queried_there() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return ok({"task_id": "M9", "task_status": "submitted"})
        return ok({"task_id": "M9", "task_status": "processing"})

    provider, seen = kling(handler)
    task_id = await provider.create(request(reference_images=(START, END, START)))
    task = await provider.fetch(task_id)
    await provider.aclose()
    assert seen[0].url.path == "/v1/videos/multi-image2video"
    body = json.loads(seen[0].content)
    assert [item["image"] for item in body["image_list"]] == [
        base64.b64encode(i.data).decode() for i in (START, END, START)
    ]
    assert body["aspect_ratio"] == "16:9" and "image" not in body
    assert seen[1].url.path == "/v1/videos/multi-image2video/M9"
    assert task.id == task_id and task.state is ProviderState.RUNNING
    assert provider.is_same_task(task_id, "M9") and not provider.is_same_task(task_id, "M8")


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("submitted", ProviderState.QUEUED),
        ("processing", ProviderState.RUNNING),
        ("failed", ProviderState.FAILED),
    ],
)
async def test_query_states(status: str, state: ProviderState) -> None:
    data = {"task_id": "T1", "task_status": status, "task_status_msg": "risk control"}
    provider, seen = kling(lambda req: ok(data))
    task = await provider.fetch("T1")
    await provider.aclose()
    assert seen[0].method == "GET" and seen[0].url.path == "/v1/videos/image2video/T1"
    assert task.state is state
    assert task.error == ("risk control" if state is ProviderState.FAILED else None)


async def test_query_succeed_reads_the_video_url() -> None:
    data = {
        "task_id": "T1",
        "task_status": "succeed",
        "task_result": {"videos": [{"id": "v", "url": "https://cdn/v.mp4", "duration": "5"}]},
    }
    provider, _ = kling(lambda req: ok(data))
    task = await provider.fetch("T1")
    await provider.aclose()
    assert task.state is ProviderState.SUCCEEDED and task.video_url == "https://cdn/v.mp4"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (1000, 401, AuthenticationError),
        (1102, 400, InsufficientCreditsError),
        (1201, 400, InvalidRequestError),
        (1301, 400, ContentRejectedError),
        (1302, 429, RateLimitError),
        (1303, 429, RateLimitError),
        (1304, 400, AuthenticationError),
        (5000, 500, ServiceUnavailableError),
        (5001, 200, ServiceUnavailableError),
    ],
)
async def test_error_codes_map_to_errors(code: int, status: int, expected: type[Exception]) -> None:
    provider, _ = kling(lambda req: error(code, status, **{"retry-after": "3"}))
    with pytest.raises(expected) as caught:
        await provider.create(request())
    await provider.aclose()
    assert caught.value.code == code  # type: ignore[attr-defined]
    assert caught.value.retryable == (code in (1302, 1303, 5000, 5001))  # type: ignore[attr-defined]
    if expected is RateLimitError:
        assert caught.value.retry_after == 3.0  # type: ignore[attr-defined]


async def test_tuzi_sends_every_required_field_under_its_root() -> None:
    transport, seen = recorder(created)
    provider = tuzi("https://api.tu-zi.test/kling", "tz-key", transport)
    await provider.create(request(model="kling-v1-6", callback_url="https://me/cb"))
    await provider.create(request(model="kling-v2-1", external_id="kb8"))
    await provider.aclose()
    # No v2.x model takes cfg_scale, though tu-zi's doc marks it required (providers.md, D).
    assert "cfg_scale" not in json.loads(seen[1].content)
    req = seen[0]
    assert str(req.url) == "https://api.tu-zi.test/kling/v1/videos/image2video"
    assert req.headers["authorization"] == "Bearer tz-key"
    body = json.loads(req.content)
    for field in (
        "model_name",
        "mode",
        "prompt",
        "aspect_ratio",
        "duration",
        "negative_prompt",
        "cfg_scale",
        "image",
    ):
        assert field in body, field
    assert body["duration"] == 5 and body["aspect_ratio"] == "16:9"
    assert body["negative_prompt"] == "" and body["cfg_scale"] == 0.5
    assert "callback_url" not in body


def test_callbacks_flat_and_enveloped() -> None:
    provider, _ = kling(created)
    flat = json.dumps({"task_id": "T1", "task_status": "succeed"}).encode()
    wrapped = json.dumps({"code": 0, "data": {"task_id": "T1", "task_status": "succeed"}}).encode()
    assert provider.parse_callback({}, flat, time.time()) == "T1"
    assert provider.parse_callback({}, wrapped, time.time()) == "T1"
    for bad in (b"nope", b"[]", b"{}", b'{"data": {"task_status": "succeed"}}'):
        with pytest.raises(CallbackRejectedError):
            provider.parse_callback({}, bad, time.time())


async def test_motion_brush_is_accepted_by_the_strict_fake() -> None:
    from tests.fakes.kling import FakeKling
    from tests.fakes.server import serve

    async with FakeKling(api_key="k" * 40) as fake, serve(fake.app) as url:
        provider = official_kling(url, api_key="k" * 40)
        points = tuple(TrajectoryPoint(x=10 * n, y=5 * n) for n in range(5))
        masks = tuple(DynamicMask(mask=END, trajectories=points) for _ in range(6))
        # The motion brush: Kling 1.0 at 5 s (providers.md, D).
        brush = request(model="kling-v1", static_mask=END, dynamic_masks=masks)
        task_id = await provider.create(brush)
        await provider.aclose()
    body = fake.tasks[task_id].body
    assert len(body["dynamic_masks"]) == 6
    assert body["dynamic_masks"][0]["trajectories"][4] == {"x": 40, "y": 20}


async def test_balance_reads_the_resource_packs_from_the_fake() -> None:
    from tests.fakes.kling import FakeKling
    from tests.fakes.server import serve

    async with FakeKling(api_key="k" * 40) as fake, serve(fake.app) as url:
        provider = official_kling(url, api_key="k" * 40)
        text = await provider.balance()
        await provider.aclose()
    assert "42 of 100 left" in text
    (costs,) = [r for r in fake.requests if r.path == "/account/costs"]
    assert int(costs.query["end_time"]) > int(costs.query["start_time"]) > 10**12


def pack(name: str, status: str, start: float, end: float, left: float = 7) -> dict[str, Any]:
    """A resource pack in force from `start` to `end` days from now."""
    now = time.time() * 1000
    day = 86_400_000
    return {
        "resource_pack_name": name,
        "resource_pack_type": "decreasing_total",
        "total_quantity": 10.0,
        "remaining_quantity": float(left),
        "effective_time": int(now + start * day),
        "invalid_time": int(now + end * day),
        "status": status,
    }


async def test_balance_counts_only_the_packs_in_force() -> None:
    packs = [
        pack("expired", "expired", -60, -30),
        pack("used up", "runOut", -5, 20, left=0),
        pack("not yet", "toBeOnline", 3, 30),
        pack("lapsed", "online", -30, -0.01),
        pack("early", "online", 0.01, 30),
        pack("current", "online", -1, 30, left=7.5),
        pack("undated", "online", -1, 30) | {"effective_time": None, "invalid_time": None},
    ]
    answers = [{"code": 0, "msg": "", "resource_pack_subscribe_infos": packs}]

    def costs(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/account/costs"
        return ok(answers.pop(0))

    provider, _ = kling(costs)
    assert await provider.balance() == "current: 7.5 of 10 left; undated: 7 of 10 left"
    answers.append({"code": 0, "msg": "", "resource_pack_subscribe_infos": packs[:5]})
    assert await provider.balance() == "no resource packs in force"
    answers.append({"code": 0, "msg": "", "resource_pack_subscribe_infos": []})
    assert await provider.balance() == "no resource packs in force"
    await provider.aclose()


async def test_cloudflare_error_1010_is_a_firewall_block_on_kling_too() -> None:
    provider, _ = kling(lambda req: httpx.Response(403, text="Error Code: 1010"))
    with pytest.raises(FirewallBlockedError) as caught:
        await provider.create(request())
    await provider.aclose()
    assert caught.value.reason == "blocked" and caught.value.started_nothing
    provider, _ = kling(lambda req: httpx.Response(403, text="<html>403 Forbidden</html>"))
    with pytest.raises(AuthenticationError):
        await provider.create(request())
    await provider.aclose()
