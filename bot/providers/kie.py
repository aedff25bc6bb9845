"""kie.ai jobs API: upload the image, create the task, read it back, check callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from bot.providers.backend import Backend, BuildContext, SettingsSection, Url
from bot.providers.base import (
    ImageFile,
    PreparedTask,
    Provider,
    ProviderState,
    ProviderTask,
    VideoRequest,
    took_between,
    took_seconds,
)
from bot.providers.catalogue import ANYWHERE, END_FRAME, THREE_TO_FIFTEEN, ModelSpec, Where
from bot.providers.errors import (
    AuthenticationError,
    CallbackRejectedError,
    GenerationFailedError,
    InsufficientCreditsError,
    InvalidRequestError,
    KeyLimitError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.http import json_body, new_client, retry_after, send, status_error

UPLOAD_PATH = "kling-bot"
SIGNATURE_WINDOW = 300.0
MAINTENANCE = 455
# Issue 12: "kie documents 10 status queries per second" (per key); providers.md gives no
# figure for recordInfo.
STATUS_RATE = (10, 1.0)


@dataclass(frozen=True)
class _Shape:
    """How one kie model's `input` is spelled (providers.md, sections A and D)."""

    # `image_urls` (a list; the end frame second where taken) instead of `image_url`.
    image_list: bool = False
    sound: bool = False
    # The field the draft's mode goes to: "mode", or "resolution" (v3-turbo).
    mode_field: str | None = None
    aspect_ratio: bool = False
    # `negative_prompt`, `cfg_scale` and `tail_image_url`, as the 2.x models take them.
    classic: bool = False
    # The end frame as the second of `image_urls`, and `multi_shots` + `multi_prompt`.
    last_frame_in_list: bool = False
    shots: bool = False


_CLASSIC = _Shape(classic=True)
_SHAPES: dict[str, _Shape] = {
    "kling-2.6/image-to-video": _Shape(image_list=True, sound=True),
    "kling-3.0/video": _Shape(
        image_list=True,
        sound=True,
        mode_field="mode",
        aspect_ratio=True,
        last_frame_in_list=True,
        shots=True,
    ),
    "kling/v3-turbo-image-to-video": _Shape(image_list=True, mode_field="resolution"),
}

_STATES = {
    "waiting": ProviderState.QUEUED,
    "queuing": ProviderState.QUEUED,
    "generating": ProviderState.RUNNING,
    "success": ProviderState.SUCCEEDED,
    "fail": ProviderState.FAILED,
}

_ERRORS: dict[int, type[ProviderError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
    433: KeyLimitError,  # a sub-key used up its own limit (providers.md D)
    455: ServiceUnavailableError,
    500: ServiceUnavailableError,
    501: GenerationFailedError,
    505: InvalidRequestError,
}


def raise_for_code(body: Mapping[str, Any], response: httpx.Response) -> None:
    """kie answers HTTP 200 even for errors: the body's `code` decides."""
    code = body.get("code")
    if code == 200:
        return
    message = str(body.get("msg") or "unknown error")
    if not isinstance(code, int):
        if not response.is_success:
            raise status_error(response, message)
        raise ServiceUnavailableError(f"reply without a code: {message}")
    error = _ERRORS.get(code, ServiceUnavailableError)
    if error is RateLimitError:
        raise RateLimitError(message, code=code, retry_after=retry_after(response))
    if code == MAINTENANCE:
        # kie documents 455 as refused for maintenance: nothing was started.
        raise ServiceUnavailableError(message, code=code, started_nothing=True)
    raise error(message, code=code)


def build_input(
    request: VideoRequest, image_url: str, tail_url: str | None = None
) -> dict[str, Any]:
    """The `input` object of createTask for the request's model."""
    if request.reference_images or request.camera or request.static_mask or request.dynamic_masks:
        raise InvalidRequestError("kie.ai takes no reference images, camera moves or masks")
    shape = _SHAPES.get(request.model, _CLASSIC)
    fields: dict[str, Any] = {"prompt": request.prompt, "duration": str(request.duration)}
    if shape.image_list:
        if tail_url and not shape.last_frame_in_list:
            raise InvalidRequestError(f"{request.model} takes no end frame")
        fields["image_urls"] = [image_url, tail_url] if tail_url else [image_url]
    else:
        fields["image_url"] = image_url
        if tail_url:
            fields["tail_image_url"] = tail_url
    if shape.sound:
        fields["sound"] = bool(request.sound)
    if shape.mode_field and request.mode:
        fields[shape.mode_field] = request.mode
    if shape.aspect_ratio:
        fields["aspect_ratio"] = request.aspect_ratio
    if request.shots:
        if not shape.shots:
            raise InvalidRequestError(f"{request.model} takes no multi-shot")
        fields["multi_shots"] = True
        fields["multi_prompt"] = [
            {"prompt": shot.prompt, "duration": shot.duration} for shot in request.shots
        ]
    if shape.classic and request.negative_prompt:
        fields["negative_prompt"] = request.negative_prompt
    if shape.classic and request.cfg_scale is not None:
        fields["cfg_scale"] = request.cfg_scale
    return fields


def parse_record(data: Mapping[str, Any]) -> ProviderTask:
    """A recordInfo (or callback) `data` object as a ProviderTask."""
    task_id = data.get("taskId") or data.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise ServiceUnavailableError("task record without a taskId")
    state = _STATES.get(str(data.get("state")), ProviderState.RUNNING)
    took = _took(data) if state in (ProviderState.SUCCEEDED, ProviderState.FAILED) else None
    video_url = None
    if state is ProviderState.SUCCEEDED:
        video_url = _first_result_url(data.get("resultJson"))
        if video_url is None:
            return ProviderTask(
                id=task_id,
                state=ProviderState.FAILED,
                error="finished without a video",
                callback_url=_requested_callback(data.get("param")),
                took=took,
            )
    return ProviderTask(
        id=task_id,
        state=state,
        video_url=video_url,
        error=_text(data.get("failMsg")),
        error_code=_text(data.get("failCode")),
        callback_url=_requested_callback(data.get("param")),
        took=took,
    )


def _took(data: Mapping[str, Any]) -> float | None:
    """kie's `costTime` (ms; on success only), else `completeTime - createTime`."""
    return took_seconds(data.get("costTime")) or took_between(
        data.get("createTime"), data.get("completeTime")
    )


def _requested_callback(param: Any) -> str | None:
    """The `callBackUrl` of the createTask request that kie echoes in `param`."""
    try:
        request = json.loads(param) if isinstance(param, str) else param
        url = request.get("callBackUrl")
    except (ValueError, AttributeError, RecursionError):
        return None
    return url if isinstance(url, str) and url else None


def _first_result_url(result_json: Any) -> str | None:
    try:
        result = json.loads(result_json) if isinstance(result_json, str) else result_json
        urls = result["resultUrls"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    if isinstance(urls, list) and urls and isinstance(urls[0], str) and urls[0]:
        return urls[0]
    return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def signature(key: str, task_id: str, timestamp: str) -> str:
    """kie's webhook signature: base64 HMAC-SHA256 of `taskId.timestamp`."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class KieProvider(Provider):
    """The kie.ai backend."""

    name = "kie"
    # kie's pages for kling-2.6, v2-5-turbo-pro and v3-turbo list JPEG and PNG only
    # (providers.md, section D): every image goes as one of those, WebP converted.
    image_types = ("image/jpeg", "image/png")
    # kie drops (429) what exceeds 20 new tasks per 10 s by its own clock; counting them per
    # 11 s leaves room for ±0.5 s of jitter between our sending and its arrival.
    create_rate = (20, 11.0)
    status_rate = STATUS_RATE
    # Result URLs may expire after 24 h; `fresh_url` reaches the media for its 14 days.
    link_life = 24 * 3600.0
    results_kept = 14 * 86400.0

    def __init__(
        self,
        api_key: str,
        *,
        api_url: str = "https://api.kie.ai",
        upload_url: str = "https://kieai.redpandaai.co",
        hmac_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._upload_url = upload_url.rstrip("/")
        self._hmac_key = hmac_key
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._client = new_client(transport, timeout)

    async def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        """One authenticated request; the body's `data` once its `code` says success."""
        return _data(await self._send(method, url, **kwargs))

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One authenticated request, its answer unread."""
        request = self._client.build_request(method, url, headers=self._auth, **kwargs)
        return await send(self._client, request)

    async def upload(self, image: ImageFile, prefix: str) -> str:
        """Upload an image to kie's file host; return its download URL."""
        name = f"{prefix}-{uuid.uuid4().hex[:12]}{_suffix(image.mime_type)}"
        data = await self._call(
            "POST",
            f"{self._upload_url}/api/file-stream-upload",
            data={"uploadPath": UPLOAD_PATH, "fileName": name},
            files={"file": (name, image.data, image.mime_type)},
        )
        return _field(data, "downloadUrl", "upload")

    async def prepare(self, request: VideoRequest) -> PreparedTask:
        """Upload the image(s) (free) and build the createTask body."""
        # Refuse what the model cannot do before uploading anything.
        build_input(request, "-", "-" if request.tail_image else None)
        image_url = await self.upload(request.image, request.external_id)
        tail_url = None
        if request.tail_image is not None:
            tail_url = await self.upload(request.tail_image, f"{request.external_id}-end")
        payload: dict[str, Any] = {
            "model": request.model,
            "input": build_input(request, image_url, tail_url),
        }
        if request.callback_url:
            payload["callBackUrl"] = request.callback_url
        return PreparedTask(route="createTask", payload=payload)

    async def start(self, prepared: PreparedTask) -> str:
        """Create the task; return kie's taskId."""
        data = await self._call(
            "POST", f"{self._api_url}/api/v1/jobs/createTask", json=prepared.payload
        )
        return _field(data, "taskId", "createTask")

    async def fetch(self, task_id: str) -> ProviderTask:
        """Read the task through recordInfo."""
        try:
            data = await self._call(
                "GET", f"{self._api_url}/api/v1/jobs/recordInfo", params={"taskId": task_id}
            )
        except RateLimitError as exc:
            if exc.retry_after is not None:
                raise
            # kie's 429 carries no Retry-After; the query window is over within its length.
            raise RateLimitError(exc.message, code=exc.code, retry_after=STATUS_RATE[1]) from exc
        if not isinstance(data, dict):
            raise ServiceUnavailableError("recordInfo answered without data")
        return parse_record(data)

    async def fresh_url(self, url: str) -> str | None:
        """A link valid 20 minutes to a kie-made result (its own URL may expire after 24 h,
        the media is kept 14 days: providers.md A)."""
        response = await self._send(
            "POST", f"{self._api_url}/api/v1/common/download-url", json={"url": url}
        )
        if response.status_code in (404, 405) and not _has_code(response):
            # Not kie's refusal (that has a code): this host, a gateway in front of kie, has
            # no such endpoint, which says nothing of the video.
            return None
        data = _data(response)
        if not isinstance(data, str) or not data.startswith(("https://", "http://")):
            raise ServiceUnavailableError("download-url answered without a link")
        return data

    async def credits(self) -> float:
        """The account's remaining credits."""
        data = await self._call("GET", f"{self._api_url}/api/v1/chat/credit")
        return float(data or 0)

    async def balance(self) -> str:
        """Remaining kie credits."""
        return f"{await self.credits():g} credits"

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Return the callback's taskId after checking its signature when a key is set."""
        try:
            payload = json.loads(body)
            data = payload["data"]
            task_id = data.get("taskId") or data.get("task_id")
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            raise CallbackRejectedError("callback body is not a kie task record") from exc
        if not isinstance(task_id, str) or not task_id:
            raise CallbackRejectedError("callback without a taskId")
        if self._hmac_key:
            self._check_signature(headers, task_id, now)
        return task_id

    def _check_signature(self, headers: Mapping[str, str], task_id: str, now: float) -> None:
        timestamp = headers.get("x-webhook-timestamp", "")
        given = headers.get("x-webhook-signature", "")
        try:
            skew = abs(now - float(timestamp))
        except ValueError as exc:
            raise CallbackRejectedError("callback without a valid timestamp") from exc
        if skew > SIGNATURE_WINDOW:
            raise CallbackRejectedError("callback timestamp outside the allowed window")
        assert self._hmac_key is not None
        try:
            expected = signature(self._hmac_key, task_id, timestamp).encode()
            matches = hmac.compare_digest(expected, given.encode())
        except UnicodeEncodeError as exc:  # lone surrogates from a JSON \ud800 escape
            raise CallbackRejectedError("callback fields are not valid text") from exc
        if not matches:
            raise CallbackRejectedError("callback signature does not match")

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _data(response: httpx.Response) -> Any:
    """The body's `data` once its `code` says success."""
    body = json_body(response)
    raise_for_code(body, response)
    return body.get("data")


def _has_code(response: httpx.Response) -> bool:
    """Whether the body is kie's envelope, with its integer `code`."""
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and isinstance(body.get("code"), int)


def _field(data: Any, name: str, call: str) -> str:
    value = data.get(name) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise ServiceUnavailableError(f"{call} answered without a {name}")
    return value


def _suffix(mime_type: str) -> str:
    return {"image/png": ".png", "image/webp": ".webp"}.get(mime_type, ".jpg")


class KieSettings(SettingsSection):
    """KIE_API_KEY enables kie.ai; the hosts and the webhook key are optional."""

    kie_api_key: SecretStr | None = None
    kie_api_url: Url = "https://api.kie.ai"
    kie_upload_url: Url = "https://kieai.redpandaai.co"
    kie_webhook_hmac_key: SecretStr | None = None


# The models' input fields and limits: shared/docs/providers.md, section A.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        backend="kie",
        name="kling-2.6/image-to-video",
        label="Kling 2.6",
        code="k26",
        prompt_max=1000,
        sound=ANYWHERE,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-5-turbo-image-to-video-pro",
        label="Kling 2.5 Turbo Pro",
        code="k25tp",
        prompt_max=2500,
        negative_prompt_max=2496,
        cfg_scale=True,
        end_frame=ANYWHERE,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-1-pro",
        label="Kling 2.1 Pro",
        code="k21p",
        prompt_max=5000,
        negative_prompt_max=500,
        cfg_scale=True,
        end_frame=ANYWHERE,
    ),
    # Newer models: providers.md, section D.
    ModelSpec(
        backend="kie",
        name="kling-3.0/video",
        label="Kling 3.0",
        code="k30",
        prompt_max=2500,
        durations=THREE_TO_FIFTEEN,
        modes=("pro", "std", "4K"),  # kie's default first
        aspect_ratio=True,
        sound=ANYWHERE,
        end_frame=ANYWHERE,  # image_urls: first, then last frame
        # multi_shots: up to 5 shots of 1-12 s, prompts up to 500; then the first frame only.
        multi_shot=Where(without=frozenset({END_FRAME})),
        shots_max=5,
        shot_prompt_max=500,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v3-turbo-image-to-video",
        label="Kling 3.0 Turbo",
        code="k3t",
        prompt_max=2500,
        durations=THREE_TO_FIFTEEN,
        modes=("1080p", "720p"),  # its required `resolution`
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-1-master-image-to-video",
        label="Kling 2.1 Master",
        code="k21m",
        prompt_max=5000,
        negative_prompt_max=500,
        cfg_scale=True,
    ),
    ModelSpec(
        backend="kie",
        name="kling/v2-1-standard",
        label="Kling 2.1 Standard",
        code="k21s",
        prompt_max=5000,
        negative_prompt_max=500,
        cfg_scale=True,
    ),
)


def _build(settings: KieSettings, context: BuildContext) -> Provider:
    assert settings.kie_api_key is not None
    hmac_key = settings.kie_webhook_hmac_key
    return KieProvider(
        settings.kie_api_key.get_secret_value(),
        api_url=settings.kie_api_url,
        upload_url=settings.kie_upload_url,
        hmac_key=hmac_key.get_secret_value() if hmac_key is not None else None,
        transport=context.transport,
        timeout=context.timeout,
    )


BACKEND = Backend(
    name="kie",
    title="kie.ai",
    settings=KieSettings,
    models=MODELS,
    build=_build,
    enabled=lambda settings: settings.kie_api_key is not None,
    hint="KIE_API_KEY (kie.ai)",
)
