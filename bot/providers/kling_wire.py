"""The official Kling `/v1/videos` wire shape, written once for Kling and every proxy of it."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

import httpx

from bot.providers.base import (
    ImageFile,
    PreparedTask,
    Provider,
    ProviderState,
    ProviderTask,
    VideoRequest,
    took_between,
)
from bot.providers.errors import (
    AuthenticationError,
    CallbackRejectedError,
    ContentRejectedError,
    InsufficientCreditsError,
    InvalidRequestError,
    LookupInconclusiveError,
    NotFoundError,
    ProviderError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.http import json_body, new_client, retry_after, send, status_error
from bot.providers.kling_models import CFG_SCALE_MODELS

SINGLE = "image2video"
MULTI = "multi-image2video"
_MULTI_PREFIX = "multi:"
# The list query (providers.md D): pageSize ≤ 500. It holds the account's whole history, so
# only a few pages are read, each large enough for every id asked about plus some margin.
LIST_PAGE_MAX = 500
LIST_PAGE_MIN = 50
LIST_MARGIN = 20
LIST_PAGES = 3
# What a server without a route answers: 404, or 405 where the path takes another method.
_NO_ROUTE = frozenset({404, 405})

_STATES = {
    "submitted": ProviderState.QUEUED,
    "processing": ProviderState.RUNNING,
    "succeed": ProviderState.SUCCEEDED,
    # Third-party copies of the docs say "completed"; accept it too.
    "completed": ProviderState.SUCCEEDED,
    "failed": ProviderState.FAILED,
}


@dataclass(frozen=True)
class WireFlavour:
    """How a backend bends the official shape."""

    # tu-zi marks every field required; send them all, with neutral defaults.
    all_fields: bool = False
    # tu-zi's doc types duration as an integer.
    integer_duration: bool = False
    # Whether the backend is known to call `callback_url`.
    callbacks: bool = True
    # Whether a lookup by `external_task_id` that finds nothing proves there is no task.
    lookup_proves_absence: bool = True
    # How long result links work: Kling keeps result videos 30 days (providers.md B).
    results_kept: float | None = 30 * 86400.0


OFFICIAL = WireFlavour()


def error_for(code: int, message: str, response: httpx.Response) -> ProviderError:
    """The error an envelope code means (Kling's table)."""
    if 1000 <= code <= 1004 or code == 1103 or code == 1304:
        return AuthenticationError(message, code=code)
    if 1100 <= code <= 1102:
        return InsufficientCreditsError(message, code=code)
    if 1200 <= code <= 1299:
        return InvalidRequestError(message, code=code)
    if code in (1300, 1301):
        return ContentRejectedError(message, code=code)
    if code in (1302, 1303):
        return RateLimitError(message, code=code, retry_after=retry_after(response))
    if 5000 <= code <= 5099:
        return ServiceUnavailableError(message, code=code)
    return (
        status_error(response, message)
        if not response.is_success
        else ProviderError(message, code=code)
    )


def encode_image(image: ImageFile) -> str:
    """Raw base64, without a `data:` prefix (Kling refuses one)."""
    return base64.b64encode(image.data).decode()


def _video_url(result: Any) -> str | None:
    videos = result.get("videos") if isinstance(result, dict) else None
    first = videos[0] if isinstance(videos, list) and videos else None
    url = first.get("url") if isinstance(first, dict) else None
    return url if isinstance(url, str) and url else None


def parse_task(data: Mapping[str, Any], reference: str) -> ProviderTask:
    """A task object (query answer or callback) as a ProviderTask named `reference`."""
    state = _STATES.get(str(data.get("task_status", "")), ProviderState.RUNNING)
    if state not in (ProviderState.SUCCEEDED, ProviderState.FAILED):
        return ProviderTask(id=reference, state=state)
    took = took_between(data.get("created_at"), data.get("updated_at"))
    if state is ProviderState.FAILED:
        message = data.get("task_status_msg")
        error = str(message) if message else None
        return ProviderTask(id=reference, state=state, error=error, took=took)
    url = _video_url(data.get("task_result"))
    if url is None:
        return ProviderTask(
            id=reference, state=ProviderState.FAILED, error="finished without a video", took=took
        )
    return ProviderTask(id=reference, state=state, video_url=url, took=took)


def task_object(payload: Any) -> Mapping[str, Any]:
    """The task object of a callback, flat or wrapped in the envelope."""
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        return payload["data"]  # type: ignore[no-any-return]
    if isinstance(payload, dict):
        return payload
    raise CallbackRejectedError("callback body is not a task object")


class OfficialShapeProvider(Provider):
    """A backend that speaks the official Kling shape under `base_url`."""

    image_types = ("image/jpeg", "image/png")
    can_find = True

    def __init__(
        self,
        name: str,
        base_url: str,
        auth: httpx.Auth,
        flavour: WireFlavour = OFFICIAL,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.name = name
        self.sends_callbacks = flavour.callbacks
        # Kling documents one lifetime, for the video and so for its link.
        self.link_life = self.results_kept = flavour.results_kept
        self._base = base_url.rstrip("/")
        self._flavour = flavour
        self._client = new_client(transport, timeout)
        # The auth adds the token to each request and renews it (kling_auth.py).
        self._client.auth = auth
        # Cleared once the backend shows it has no list query (tu-zi documents none).
        self._has_list = True

    def image2video_body(self, request: VideoRequest) -> dict[str, Any]:
        """The body of `POST /v1/videos/image2video`."""
        body = self._common(request)
        body["image"] = encode_image(request.image)
        if request.cfg_scale is not None:
            body["cfg_scale"] = request.cfg_scale
        elif self._flavour.all_fields and request.model in CFG_SCALE_MODELS:
            # Required by tu-zi's doc where the model takes it; no v2.x does (providers.md, D).
            body["cfg_scale"] = 0.5
        if request.tail_image is not None:
            body["image_tail"] = encode_image(request.tail_image)
        if request.sound is not None:
            body["sound"] = "on" if request.sound else "off"
        if request.shots:
            # Kling 3.0's own shots (providers.md, D ⚠️): indexed, lengths adding up to the
            # total, each spelled as the total's `duration` is (the source gives no type).
            body["multi_shot"] = True
            body["shot_type"] = "customize"
            body["multi_prompt"] = [
                {"index": index, "prompt": shot.prompt, "duration": self._seconds(shot.duration)}
                for index, shot in enumerate(request.shots, 1)
            ]
        if request.camera is not None:
            camera: dict[str, Any] = {"type": request.camera.type}
            if request.camera.axis is not None:
                camera["config"] = {request.camera.axis: request.camera.amount}
            body["camera_control"] = camera
        if request.static_mask is not None:
            body["static_mask"] = encode_image(request.static_mask)
        if request.dynamic_masks:
            body["dynamic_masks"] = [
                {
                    "mask": encode_image(mask.mask),
                    "trajectories": [{"x": p.x, "y": p.y} for p in mask.trajectories],
                }
                for mask in request.dynamic_masks
            ]
        return body

    def multi_image_body(self, request: VideoRequest) -> dict[str, Any]:
        """The body of `POST /v1/videos/multi-image2video`."""
        body = self._common(request)
        body["image_list"] = [{"image": encode_image(image)} for image in request.reference_images]
        body["aspect_ratio"] = request.aspect_ratio
        return body

    def _seconds(self, seconds: int) -> int | str:
        """A length as the backend spells it: the string "5" (official), 5 (tu-zi)."""
        return seconds if self._flavour.integer_duration else str(seconds)

    def _common(self, request: VideoRequest) -> dict[str, Any]:
        flavour = self._flavour
        body: dict[str, Any] = {
            "model_name": request.model,
            "prompt": request.prompt,
            "duration": self._seconds(request.duration),
            "external_task_id": request.external_id,
        }
        if request.mode:
            body["mode"] = request.mode
        if request.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        if request.callback_url and flavour.callbacks:
            body["callback_url"] = request.callback_url
        if flavour.all_fields:
            body.setdefault("mode", "std")
            body.setdefault("negative_prompt", "")
            body["aspect_ratio"] = request.aspect_ratio
        return body

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One authorised request; the envelope's `data` once its `code` says success."""
        body, response = await self._envelope(method, path, **kwargs)
        return _data_of(body, response)

    async def _envelope(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, Any], httpx.Response]:
        """The JSON envelope of one request; the client's auth resends it once with a new token."""
        request = self._client.build_request(method, f"{self._base}{path}", **kwargs)
        response = await send(self._client, request)
        return json_body(response), response

    async def prepare(self, request: VideoRequest) -> PreparedTask:
        """Build the body; images travel inside it, so nothing is uploaded."""
        if request.reference_images:
            return PreparedTask(route=MULTI, payload=self.multi_image_body(request))
        return PreparedTask(route=SINGLE, payload=self.image2video_body(request))

    async def start(self, prepared: PreparedTask) -> str:
        """Create the task; multi-image tasks are remembered as such in the returned id."""
        data = await self._call("POST", f"/v1/videos/{prepared.route}", json=prepared.payload)
        task_id = _task_id(data)
        return _MULTI_PREFIX + task_id if prepared.route == MULTI else task_id

    async def find(self, external_id: str) -> str | None:
        """The task made under our `external_task_id`; None only when the provider proves none.

        Raises LookupInconclusiveError when the answers cannot tell (a proxy without the
        lookup, an unexpected shape): a create must not be repeated on a guess.
        """
        proven_absent = True
        for kind in (SINGLE, MULTI):
            found = await self._find_at(kind, external_id)
            if isinstance(found, str):
                return _MULTI_PREFIX + found if kind == MULTI else found
            proven_absent = proven_absent and found is _ABSENT
        if proven_absent and self._flavour.lookup_proves_absence:
            return None
        raise LookupInconclusiveError(f"{self.name} cannot say whether {external_id} exists")

    async def _find_at(self, kind: str, external_id: str) -> str | object:
        """A task id, _ABSENT or _UNKNOWN, by the documented query form, then the path form."""
        found = await self._lookup(
            f"/v1/videos/{kind}", external_id, {"external_task_id": external_id}
        )
        if found is not _UNKNOWN:
            return found
        # Some copies of the reference take either id in the path; a miss there proves nothing.
        by_path = await self._lookup(f"/v1/videos/{kind}/{external_id}", external_id)
        return by_path if isinstance(by_path, str) else _UNKNOWN

    async def _lookup(
        self, path: str, external_id: str, params: dict[str, str] | None = None
    ) -> str | object:
        try:
            body, response = await self._envelope("GET", path, params=params)
        except ProviderError as exc:
            if exc.retryable:
                raise
            return _UNKNOWN  # not an envelope: e.g. a proxy's plain 404 for a route it lacks
        return _lookup_answer(body, response, external_id)

    async def fetch(self, task_id: str) -> ProviderTask:
        """Query the task at the endpoint it was created at."""
        kind, plain = _route_of(task_id)
        data = await self._call("GET", f"/v1/videos/{kind}/{plain}")
        if not isinstance(data, dict):
            raise ServiceUnavailableError("query answered without data")
        return parse_task(data, task_id)

    async def fetch_many(self, task_ids: Sequence[str]) -> Mapping[str, ProviderTask] | None:
        """The tasks among `task_ids` that the list queries show; None if the backend has none."""
        if not self._has_list:
            return None
        wanted: dict[str, dict[str, str]] = {}
        for task_id in task_ids:
            kind, plain = _route_of(task_id)
            wanted.setdefault(kind, {})[plain] = task_id
        found: dict[str, ProviderTask] = {}
        for kind in sorted(wanted):
            listed = await self._list(kind, wanted[kind])
            if listed is None:
                self._has_list = False
                return None
            found.update(listed)
        return found

    async def _list(self, kind: str, wanted: Mapping[str, str]) -> dict[str, ProviderTask] | None:
        """The `wanted` tasks (plain id → caller's id) on the first pages; None: no list."""
        size = min(LIST_PAGE_MAX, max(len(wanted) + LIST_MARGIN, LIST_PAGE_MIN))
        missing = dict(wanted)
        found: dict[str, ProviderTask] = {}
        for page in range(1, LIST_PAGES + 1):
            items = await self._page(kind, page, size)
            if items is None:
                return None
            for item in items:
                task_id = item.get("task_id") if isinstance(item, dict) else None
                if isinstance(task_id, str) and task_id in missing:
                    reference = missing.pop(task_id)
                    found[reference] = parse_task(item, reference)
            # The order is undocumented: only a short page proves there is no more.
            if not missing or len(items) < size:
                break
        return found

    async def _page(self, kind: str, page: int, size: int) -> list[Any] | None:
        """One page of the list query; None when the answer shows there is no such query."""
        params = {"pageNum": page, "pageSize": size}
        try:
            body, response = await self._envelope("GET", f"/v1/videos/{kind}", params=params)
        except ProviderError as exc:
            if not exc.retryable and exc.code in _NO_ROUTE:
                return None  # a plain "not found" page: no such route
            raise
        if not isinstance(body.get("code"), int) and (
            response.is_success or response.status_code in _NO_ROUTE
        ):
            return None  # JSON, but not Kling's envelope: the route is not the list query
        data = _data_of(body, response)
        return data if isinstance(data, list) else None

    async def costs(self, start_ms: int, end_ms: int) -> Any:
        """The account's resource packs (`GET /account/costs`)."""
        return await self._call(
            "GET", "/account/costs", params={"start_time": start_ms, "end_time": end_ms}
        )

    async def balance(self) -> str:
        """Remaining quantity of the resource packs in force, among those of the last 90 days."""
        now_ms = int(time.time() * 1000)
        data = await self.costs(now_ms - 90 * 24 * 3600 * 1000, now_ms)
        packs = data.get("resource_pack_subscribe_infos") if isinstance(data, dict) else None
        parts = []
        for pack in packs if isinstance(packs, list) else []:
            if not isinstance(pack, dict) or not _in_force(pack, now_ms):
                continue
            name = pack.get("resource_pack_name", "pack")
            left, total = pack.get("remaining_quantity"), pack.get("total_quantity")
            parts.append(
                f"{name}: {left:g} of {total:g} left"
                if _is_number(left) and _is_number(total)
                else f"{name}: ?"
            )
        return "; ".join(parts) or "no resource packs in force"

    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """The task id of a callback, flat or enveloped (Kling does not sign callbacks)."""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise CallbackRejectedError("callback body is not JSON") from exc
        task_id = task_object(payload).get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise CallbackRejectedError("callback without a task_id")
        return task_id

    def is_same_task(self, provider_task_id: str, reported: str) -> bool:
        """Multi-image ids are stored with their endpoint; callbacks carry the bare id."""
        return provider_task_id.removeprefix(_MULTI_PREFIX) == reported

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


_ABSENT = object()
_UNKNOWN = object()


def _route_of(task_id: str) -> tuple[str, str]:
    """The endpoint kind a stored task id was created at, and the provider's own id."""
    if task_id.startswith(_MULTI_PREFIX):
        return MULTI, task_id[len(_MULTI_PREFIX) :]
    return SINGLE, task_id


def _data_of(body: Mapping[str, Any], response: httpx.Response) -> Any:
    """The envelope's `data` once its `code` says success; else the error it means."""
    code = body.get("code")
    if code == 0:
        return body.get("data")
    message = str(body.get("message") or body.get("msg") or "unknown error")
    if not isinstance(code, int):
        raise status_error(response, message)
    raise error_for(code, message, response)


def _lookup_answer(body: Mapping[str, Any], response: httpx.Response, external_id: str) -> object:
    """What one lookup answer says: the task id, _ABSENT, or _UNKNOWN."""
    code = body.get("code")
    if code == 0:
        data = body.get("data")
        if not data:
            return _ABSENT
        # One task may leave out its external id; in a list only an exact match is ours.
        accepted = (external_id,) if isinstance(data, list) else (external_id, None)
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict) and _external_id_of(item) in accepted:
                task_id = item.get("task_id")
                if isinstance(task_id, str) and task_id:
                    return task_id
        return _UNKNOWN  # tasks, but not ours: the filter may have been ignored
    if not isinstance(code, int):
        return _UNKNOWN
    error = error_for(code, str(body.get("message") or ""), response)
    if response.status_code == 404 and isinstance(error, NotFoundError | InvalidRequestError):
        # The API's own "task not found": HTTP 404 with its envelope (the reference says a
        # missing task "may return 404 or another code"). A 400 with a 12xx code may be a
        # refused query, so it proves nothing.
        return _ABSENT
    if error.retryable:
        raise error
    return _UNKNOWN


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_force(pack: Mapping[str, Any], now_ms: int) -> bool:
    """Whether a resource pack can pay for a task now: online, and now within its span."""
    # Kling's account-usage reference (klingai.com/document-api/api/assets/account-usage, beyond
    # providers.md B) gives status toBeOnline, online, expired or runOut and the span in ms; a
    # status may lag behind its span, so both must agree.
    if pack.get("status") != "online":
        return False
    start, end = pack.get("effective_time"), pack.get("invalid_time")
    if _is_number(start) and now_ms < start:
        return False
    return not (_is_number(end) and now_ms >= end)


def _external_id_of(task: Mapping[str, Any]) -> str | None:
    info = task.get("task_info")
    value = info.get("external_task_id") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


def _task_id(data: Any) -> str:
    task_id = data.get("task_id") if isinstance(data, dict) else None
    if not isinstance(task_id, str) or not task_id:
        raise ServiceUnavailableError("create answered without a task_id")
    return task_id
