"""The kie.ai client against an httpx mock transport."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest

from bot.providers.base import ImageFile, ProviderState, VideoRequest
from bot.providers.errors import (
    AuthenticationError,
    CallbackRejectedError,
    FirewallBlockedError,
    GenerationFailedError,
    InsufficientCreditsError,
    InvalidRequestError,
    KeyLimitError,
    NotFoundError,
    ProviderConnectionError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.kie import KieProvider, signature

IMAGE = ImageFile(
    data=b"\xff\xd8jpeg", mime_type="image/jpeg", file_name="a.jpg", width=1, height=1
)
UPLOADED = "https://files.example/kling-bot/kb1.jpg"


def request(model: str = "kling-2.6/image-to-video", **extra: object) -> VideoRequest:
    fields: dict[str, object] = {
        "model": model,
        "prompt": "a cat blinks",
        "image": IMAGE,
        "duration": 10,
        "external_id": "kb1",
    }
    fields.update(extra)
    return VideoRequest.model_validate(fields)


Handler = Callable[[httpx.Request], httpx.Response]


def provider(handler: Handler, **kwargs: object) -> tuple[KieProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    client = KieProvider(
        "key-123",
        api_url="https://api.test",
        upload_url="https://upload.test",
        transport=httpx.MockTransport(record),
        **kwargs,  # type: ignore[arg-type]
    )
    return client, seen


def happy(req: httpx.Request) -> httpx.Response:
    if req.url.path == "/api/file-stream-upload":
        return httpx.Response(
            200, json={"success": True, "code": 200, "msg": "ok", "data": {"downloadUrl": UPLOADED}}
        )
    if req.url.path == "/api/v1/jobs/createTask":
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "t-1"}})
    raise AssertionError(f"unexpected {req.url}")


async def test_create_uploads_then_creates_kling_26_with_sound_and_string_duration() -> None:
    kie, seen = provider(happy)
    task_id = await kie.create(request(sound=True, callback_url="https://me/cb/1/s"))
    await kie.aclose()
    assert task_id == "t-1"
    upload, create = seen
    assert upload.url.host == "upload.test"
    assert upload.headers["authorization"] == "Bearer key-123"
    assert b"\xff\xd8jpeg" in upload.content and b"kling-bot" in upload.content
    assert create.headers["authorization"] == "Bearer key-123"
    assert create.headers["user-agent"].startswith("kling-bot/")
    body = json.loads(create.content)
    assert body == {
        "model": "kling-2.6/image-to-video",
        "callBackUrl": "https://me/cb/1/s",
        "input": {
            "prompt": "a cat blinks",
            "duration": "10",
            "image_urls": [UPLOADED],
            "sound": True,
        },
    }


async def test_create_v21_pro_uses_image_url_negative_prompt_and_cfg_scale() -> None:
    kie, seen = provider(happy)
    await kie.create(request("kling/v2-1-pro", negative_prompt="blur", cfg_scale=0.7))
    await kie.aclose()
    body = json.loads(seen[1].content)
    assert "callBackUrl" not in body
    assert body["input"] == {
        "prompt": "a cat blinks",
        "duration": "10",
        "image_url": UPLOADED,
        "negative_prompt": "blur",
        "cfg_scale": 0.7,
    }


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, AuthenticationError),
        (402, InsufficientCreditsError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (433, KeyLimitError),  # providers.md D: a sub-key's own limit
        (455, ServiceUnavailableError),
        (500, ServiceUnavailableError),
        (501, GenerationFailedError),
    ],
)
async def test_body_code_decides_even_with_http_200(code: int, error: type[Exception]) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("createTask"):
            return httpx.Response(200, json={"code": code, "msg": "nope", "data": None})
        return happy(req)

    kie, _ = provider(handler)
    with pytest.raises(error) as caught:
        await kie.create(request())
    await kie.aclose()
    assert caught.value.code == code  # type: ignore[attr-defined]


async def test_transport_failures_tell_unsent_from_uncertain() -> None:
    def refused(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    def timed_out(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("createTask"):
            raise httpx.ReadTimeout("slow", request=req)
        return happy(req)

    kie, _ = provider(refused)
    with pytest.raises(ProviderConnectionError):
        await kie.create(request())
    await kie.aclose()
    kie, _ = provider(timed_out)
    with pytest.raises(ProviderTimeoutError) as caught:
        await kie.create(request())
    await kie.aclose()
    assert caught.value.reason == "uncertain"


async def test_http_errors_and_non_json_bodies() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.params.get("taskId") == "busy":
            return httpx.Response(429, headers={"Retry-After": "7"}, text="slow down")
        if req.url.params.get("taskId") == "html":
            return httpx.Response(200, text="<html>cloudflare</html>")
        return httpx.Response(502, text="bad gateway")

    kie, _ = provider(handler)
    with pytest.raises(RateLimitError) as limited:
        await kie.fetch("busy")
    assert limited.value.retry_after == 7.0
    with pytest.raises(ServiceUnavailableError):
        await kie.fetch("html")
    with pytest.raises(ServiceUnavailableError):
        await kie.fetch("down")
    await kie.aclose()


async def test_cloudflare_error_1010_is_a_firewall_block_not_a_bad_key() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("credit"):
            return httpx.Response(403, text="Forbidden")
        # Cloudflare's answer to a client it bans (providers.md D), on either host.
        return httpx.Response(
            403, text="error code: 1010", headers={"content-type": "text/plain; charset=UTF-8"}
        )

    kie, seen = provider(handler)
    with pytest.raises(FirewallBlockedError) as caught:
        await kie.create(request())
    with pytest.raises(FirewallBlockedError):
        await kie.fetch("t-1")
    with pytest.raises(AuthenticationError):
        await kie.credits()
    await kie.aclose()
    blocked = caught.value
    assert blocked.reason == "blocked" and blocked.code == 403
    assert blocked.started_nothing and not blocked.retryable
    assert "firewall block, not a key problem" in blocked.message
    assert [r.url.host for r in seen] == ["upload.test", "api.test", "api.test"]


def record(state: str, **extra: object) -> httpx.Response:
    data: dict[str, object] = {"taskId": "t-1", "model": "m", "state": state, "param": "{}"}
    data.update(extra)
    return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("waiting", ProviderState.QUEUED),
        ("queuing", ProviderState.QUEUED),
        ("generating", ProviderState.RUNNING),
        ("something-new", ProviderState.RUNNING),
    ],
)
async def test_fetch_maps_states(state: str, expected: ProviderState) -> None:
    kie, seen = provider(lambda req: record(state))
    task = await kie.fetch("t-1")
    await kie.aclose()
    assert task.state is expected and task.video_url is None
    assert seen[0].url.path == "/api/v1/jobs/recordInfo"
    assert seen[0].url.params["taskId"] == "t-1"


async def test_fetch_success_reads_result_json_and_failure_reads_fail_msg() -> None:
    result = json.dumps({"resultUrls": ["https://cdn/v.mp4"]})
    kie, _ = provider(lambda req: record("success", resultJson=result))
    done = await kie.fetch("t-1")
    await kie.aclose()
    assert done.state is ProviderState.SUCCEEDED and done.video_url == "https://cdn/v.mp4"

    kie, _ = provider(lambda req: record("fail", failCode="500", failMsg="moderation"))
    failed = await kie.fetch("t-1")
    await kie.aclose()
    assert failed.state is ProviderState.FAILED
    assert failed.error == "moderation" and failed.error_code == "500"

    kie, _ = provider(lambda req: record("success", resultJson="{broken"))
    odd = await kie.fetch("t-1")
    await kie.aclose()
    assert odd.state is ProviderState.FAILED


def callback_body(task_id: str = "t-1") -> bytes:
    return json.dumps(
        {"code": 200, "msg": "ok", "data": {"taskId": task_id, "state": "success"}}
    ).encode()


async def test_callback_without_hmac_key_returns_task_id() -> None:
    kie, _ = provider(happy)
    assert kie.parse_callback({}, callback_body(), time.time()) == "t-1"
    for bad in (b"not json", b"{}", b'{"data": {}}', b'{"data": []}'):
        with pytest.raises(CallbackRejectedError):
            kie.parse_callback({}, bad, time.time())
    await kie.aclose()


async def test_callback_signature_checked_within_window() -> None:
    kie, _ = provider(happy, hmac_key="hmac-secret")
    now = time.time()
    stamp = str(int(now))
    good = {
        "x-webhook-timestamp": stamp,
        "x-webhook-signature": signature("hmac-secret", "t-1", stamp),
    }
    assert kie.parse_callback(good, callback_body(), now) == "t-1"
    forged = dict(good, **{"x-webhook-signature": signature("other", "t-1", stamp)})
    with pytest.raises(CallbackRejectedError):
        kie.parse_callback(forged, callback_body(), now)
    with pytest.raises(CallbackRejectedError):  # signed for another task
        kie.parse_callback(good, callback_body("t-2"), now)
    with pytest.raises(CallbackRejectedError):  # replayed too late
        kie.parse_callback(good, callback_body(), now + 3600)
    with pytest.raises(CallbackRejectedError):
        kie.parse_callback({}, callback_body(), now)
    await kie.aclose()


async def test_credits_reads_the_integer_data() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/api/v1/chat/credit"
        return httpx.Response(200, json={"code": 200, "msg": "success", "data": 987})

    kie, _ = provider(handler)
    assert await kie.credits() == 987.0
    await kie.aclose()


async def test_create_with_an_end_frame_uploads_both_images() -> None:
    uploads: list[bytes] = []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/api/file-stream-upload":
            uploads.append(req.content)
            url = f"https://files.example/{len(uploads)}.jpg"
            return httpx.Response(200, json={"code": 200, "data": {"downloadUrl": url}})
        return happy(req)

    tail = ImageFile(
        data=b"\xff\xd8tail", mime_type="image/jpeg", file_name="b.jpg", width=1, height=1
    )
    kie, seen = provider(handler)
    await kie.create(request("kling/v2-5-turbo-image-to-video-pro", tail_image=tail))
    await kie.aclose()
    body = json.loads(seen[-1].content)
    assert body["input"]["image_url"] == "https://files.example/1.jpg"
    assert body["input"]["tail_image_url"] == "https://files.example/2.jpg"
    assert b"\xff\xd8tail" in uploads[1]


async def test_kie_refuses_what_its_models_cannot_do_before_uploading() -> None:
    kie, seen = provider(happy)
    tail = IMAGE
    with pytest.raises(InvalidRequestError):
        await kie.create(request("kling-2.6/image-to-video", tail_image=tail))
    with pytest.raises(InvalidRequestError):
        await kie.create(request("kling/v2-1-pro", reference_images=(IMAGE, IMAGE)))
    await kie.aclose()
    assert seen == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("inf", None), ("-3", None), ("1e999", None), ("99999", 3600.0)],
)
def test_retry_after_is_sane(header: str, expected: float | None) -> None:
    from bot.providers.http import retry_after

    assert retry_after(httpx.Response(429, headers={"Retry-After": header})) == expected


async def test_fresh_url_asks_download_url_for_a_link_and_reads_its_refusals() -> None:
    answers = iter(
        [
            {"code": 200, "msg": "success", "data": "https://tempfile.test/abc.mp4"},
            {"code": 422, "msg": "external file URLs are not supported"},
            {"code": 404, "msg": "file not found"},
            {"code": 200, "msg": "success", "data": None},
        ]
    )
    kie, seen = provider(lambda req: httpx.Response(200, json=next(answers)))
    result = "https://tempfile.aiquickdraw.test/v/r.mp4"
    assert await kie.fresh_url(result) == "https://tempfile.test/abc.mp4"
    assert seen[0].method == "POST" and str(seen[0].url).endswith("/api/v1/common/download-url")
    assert json.loads(seen[0].content) == {"url": result}
    assert seen[0].headers["authorization"] == "Bearer key-123"
    with pytest.raises(InvalidRequestError):
        await kie.fresh_url(result)
    with pytest.raises(NotFoundError):
        await kie.fresh_url(result)
    with pytest.raises(ServiceUnavailableError):
        await kie.fresh_url(result)
    await kie.aclose()


async def test_fresh_url_from_a_host_without_download_url_is_no_verdict_on_the_video() -> None:
    # A gateway in front of kie that lacks the endpoint answers a plain 404: that says nothing
    # of the video (kie's own "not found" comes as its envelope's code).
    kie, _ = provider(lambda req: httpx.Response(404, text="<html>Not Found</html>"))
    assert await kie.fresh_url("https://tempfile.aiquickdraw.test/v/r.mp4") is None
    await kie.aclose()
