"""A loopback fake of the official Kling API (``/v1/videos/...``) or of a proxy of its shape.

``FakeKling(access_key=..., secret_key=...)`` plays the official API (JWT auth);
``FakeKling(api_key=..., prefix="/kling", proxy_rules=True)`` plays tu-zi, whose base URL is
then ``f"{serve_url}/kling"``. Tests must ``await fake.aclose()`` (or use
``async with FakeKling(...)``) before their event loop ends: it cancels the finish timers and
closes the callback client.

Notes for test authors: the fake is stricter than the documentation where that catches our
mistakes: unknown body fields are refused (1201), JSON ``null`` counts as absent, the request
must be ``application/json``, and ``/account/costs`` wants millisecond timestamps. Images may
be raw base64 or URLs of this fake's own ``files`` (served at ``{prefix}/files/{name}``).
``finish_after`` is read when a task is created, ``outcome`` when it ends (anything but
"success" fails it); every authorized query naming a known task counts as a poll, injected
failures included; ``complete()`` on a finished task ends it again and re-sends callbacks.
HMAC secrets shorter than 32 bytes are accepted silently here, but PyJWT warns when one signs
with them, and warnings are errors in this test suite.

Stopping the bot at an exact step: ``hold(endpoint, after=False, times=None)`` holds the next
``times`` requests (all when None) to "create", "query", "multi_create", "multi_query",
"costs" or "result" (the video download) until ``Hold.release()``. A request is recorded in
``requests`` first; a hold before the work does nothing else (no task, no poll counted), one
with ``after=True`` does the work and holds only the answer. Each request is taken by at most
one hold, the oldest active one. ``delay(endpoint, seconds, times=None)`` answers late, after
the work; ``seconds=0`` clears it. A held or delayed request whose client leaves (the bot was
killed) ends quietly; one still waiting when the server shuts down (the test leaves ``serve()``)
or at ``aclose()`` is answered 503 (code 5001). ``send_callback(task_id, state=..., times=...)``
posts a task's callback as if it had any ``task_status``, leaving the task alone: for duplicate,
stale and out-of-order callbacks. Queries find tasks by ``task_id`` or ``external_task_id``
(tu-zi, with ``proxy_rules``, by ``task_id`` only); an unknown one is answered 404, code 1201,
"task not found". The official fake also serves the list query ``GET .../image2video`` (and
multi-image2video): ``?external_task_id=`` answers that one task (or 404/1201), else a page of
the newest (``pageNum`` 1-1000, ``pageSize`` 1-500); tu-zi documents no such route, so its
fake answers a GET there with the plain 404 of a route it lacks (as gin, whose default is 404
even where the path takes another method), not Starlette's 405.
``spoil(endpoint, how)`` (see ``tests.fakes.common``) creates the task, then breaks the answer.
``/account/costs`` answers one pack in force holding ``remaining_quantity`` of
``total_quantity``, or the ``packs`` a test sets (make them with ``resource_pack()``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
import mimetypes
import secrets
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar
from urllib.parse import unquote

import jwt
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import (
    DEFAULT_VIDEO,
    Failure,
    Hold,
    ProviderFake,
    RecordedRequest,
    Recorder,
    ms,
    not_found,
)

__all__ = [
    "DEFAULT_VIDEO",
    "ENDPOINTS",
    "HOLD_ENDPOINTS",
    "MODELS",
    "FakeKling",
    "Hold",
    "KlingRequest",
    "KlingTask",
    "resource_pack",
]

ENDPOINTS = frozenset(
    {"create", "query", "lookup", "multi_create", "multi_query", "multi_lookup", "costs"}
)
HOLD_ENDPOINTS = ENDPOINTS | {"result"}
MODELS = frozenset(
    {
        "kling-v3",  # ⚠️ the name per vercel/ai (providers.md, section D)
        "kling-v1",
        "kling-v1-5",
        "kling-v1-6",
        "kling-v2-master",
        "kling-v2-1",
        "kling-v2-1-master",
        "kling-v2-5-turbo",
        "kling-v2-6",
    }
)
I2V_PATH = "/v1/videos/image2video"
MULTI_PATH = "/v1/videos/multi-image2video"
FINAL_STATES = frozenset({"succeed", "failed"})
DEFAULT_FAILURE = "Failure to pass the risk control system"
MAX_TOKEN_LIFETIME = 1800 + 60
PROMPT_MAX = 2500
IMAGE_MAX_BYTES = 10 * 1024 * 1024
ASPECT_RATIOS = frozenset({"16:9", "9:16", "1:1"})
CAMERA_TYPES = frozenset(
    {"simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"}
)
CAMERA_AXES = frozenset({"horizontal", "vertical", "pan", "tilt", "roll", "zoom"})
PROXY_REQUIRED = (
    "model_name",
    "mode",
    "prompt",
    "aspect_ratio",
    "duration",
    "negative_prompt",
    "cfg_scale",
    "image",
)
_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MIN_MS = 10**12  # 2001-09-09 in milliseconds; anything smaller was sent in seconds.

KlingRequest = RecordedRequest


@dataclass
class KlingTask:
    """One generation task created through image2video or multi-image2video."""

    task_id: str
    kind: str
    body: dict[str, Any]
    external_task_id: str | None
    callback_url: str | None
    status: str
    status_msg: str
    created: float
    completed: float | None = None
    polls: int = 0
    result_url: str | None = None
    updated: float = 0.0


class _RefusalError(Exception):
    """An answer with a non-zero code: what the real service would say instead of data."""

    def __init__(self, message: str, code: int = 1201, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = _http_status(code) if status is None else status

    def response(self) -> JSONResponse:
        return _envelope(None, code=self.code, message=self.message, status=self.status)


def _http_status(code: int) -> int:
    if 1000 <= code < 1100:
        return 401
    if code in (1302, 1303):
        return 429
    if 5000 <= code <= 5002:
        return 500
    return 400


def resource_pack(
    name: str,
    status: str = "online",
    *,
    remaining: float = 42.0,
    total: float = 100.0,
    from_days: float = -1.0,
    to_days: float = 30.0,
) -> dict[str, Any]:
    """A pack as /account/costs lists it, spanning from_days..to_days from now."""
    # Kling's account-usage reference names the statuses toBeOnline, online, expired and runOut.
    now = ms(time.time())
    return {
        "resource_pack_name": name,
        "resource_pack_id": f"fake-pack-{name.lower().replace(' ', '-')}",
        "resource_pack_type": "decreasing_total",
        "total_quantity": total,
        "remaining_quantity": remaining,
        "purchase_time": now + int(min(from_days, -1.0) * 86_400_000),
        "effective_time": now + int(from_days * 86_400_000),
        "invalid_time": now + int(to_days * 86_400_000),
        "status": status,
    }


def _envelope(
    data: Any, *, code: int = 0, message: str = "SUCCEED", status: int = 200
) -> JSONResponse:
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4()), "data": data}
    return JSONResponse(body, status_code=status)


# ---- request validation --------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    proxy_rules: bool
    files_url: str  # absolute URL under which this fake serves `files`
    files: Mapping[str, bytes]


_Check = Callable[[str, Any, _Context], None]
_Rule = Callable[[dict[str, Any], _Context], None]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_of(allowed: frozenset[str]) -> _Check:
    def check(name: str, value: Any, ctx: _Context) -> None:
        if value not in allowed:
            raise _RefusalError(f"{name} must be one of {', '.join(sorted(allowed))}")

    return check


def _text(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, str):
        raise _RefusalError(f"{name} must be a string")
    if len(value) > PROMPT_MAX:
        raise _RefusalError(f"{name} must be at most {PROMPT_MAX} characters")


def _nonempty_string(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, str) or not value:
        raise _RefusalError(f"{name} must be a non-empty string")


def _http_url(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise _RefusalError(f"{name} must be an http(s) URL")


def _cfg_scale(name: str, value: Any, ctx: _Context) -> None:
    if not _is_number(value) or not 0 <= value <= 1:
        raise _RefusalError(f"{name} must be a number between 0 and 1")


def _duration(name: str, value: Any, ctx: _Context) -> None:
    # "5"/"10", and "3"…"15" for kling-v3 (checked with the model by _duration_model).
    if value in _LENGTHS:
        return
    if ctx.proxy_rules and _is_int(value) and str(value) in _LENGTHS:
        return
    allowed = "3 to 15 or its string" if ctx.proxy_rules else 'a string "3" to "15"'
    raise _RefusalError(f"{name} must be {allowed}")


_LENGTHS = frozenset(str(seconds) for seconds in range(3, 16))


def _duration_model(body: dict[str, Any], ctx: _Context) -> None:
    model = _model_of(body)
    duration = str(body.get("duration", "5"))
    if model != "kling-v3" and duration not in ("5", "10"):
        raise _RefusalError(f"duration {duration} is not supported by {model}")


def _multi_model(name: str, value: Any, ctx: _Context) -> None:
    if value != "kling-v1-6":
        raise _RefusalError(f"{name} must be kling-v1-6 for multi-image2video")


def _image(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, str) or not value:
        raise _RefusalError(f"{name} must be a non-empty string")
    if value.startswith("data:"):
        raise _RefusalError(f"{name} must be raw base64 without a 'data:' prefix")
    if value.startswith(("http://", "https://")):
        data = _hosted_file(name, value, ctx)
    else:
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _RefusalError(f"{name} is neither a URL nor valid base64") from None
    if len(data) > IMAGE_MAX_BYTES:
        raise _RefusalError(f"{name} must be at most 10 MB")
    if not data.startswith((_JPEG_MAGIC, _PNG_MAGIC)):
        raise _RefusalError(f"{name} must be a jpg or png image")


def _hosted_file(name: str, url: str, ctx: _Context) -> bytes:
    data = None
    if url.startswith(ctx.files_url):
        data = ctx.files.get(unquote(url[len(ctx.files_url) :]))
    if data is None:
        raise _RefusalError(f"{name} url could not be downloaded")
    return data


def _camera_control(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, dict) or not set(value) <= {"type", "config"}:
        raise _RefusalError(f"{name} must be an object with type and config")
    kind, config = value.get("type"), value.get("config")
    if kind not in CAMERA_TYPES:
        raise _RefusalError(f"{name}.type must be one of {', '.join(sorted(CAMERA_TYPES))}")
    if kind != "simple":
        if config is not None and (
            not isinstance(config, dict) or any(v not in (0, None) for v in config.values())
        ):
            raise _RefusalError(f"{name}.config is only allowed with type simple")
        return
    if not isinstance(config, dict) or not set(config) <= CAMERA_AXES:
        raise _RefusalError(f"{name}.config must use only {', '.join(sorted(CAMERA_AXES))}")
    if not all(_is_number(v) and -10 <= v <= 10 for v in config.values()):
        raise _RefusalError(f"{name}.config values must be numbers in [-10, 10]")
    if sum(1 for v in config.values() if v != 0) != 1:
        raise _RefusalError(f"{name}.config must have exactly one non-zero value")


def _dynamic_masks(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, list) or not 1 <= len(value) <= 6:
        raise _RefusalError(f"{name} must hold 1 to 6 masks")
    for index, item in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(item, dict) or set(item) != {"mask", "trajectories"}:
            raise _RefusalError(f"{where} must be an object with mask and trajectories")
        _image(f"{where}.mask", item["mask"], ctx)
        _trajectories(f"{where}.trajectories", item["trajectories"])


def _trajectories(name: str, value: Any) -> None:
    if not isinstance(value, list) or not 2 <= len(value) <= 77:
        raise _RefusalError(f"{name} must hold 2 to 77 points")
    for point in value:
        if not isinstance(point, dict) or set(point) != {"x", "y"}:
            raise _RefusalError(f"{name} points must be objects with x and y")
        if not all(_is_int(c) and c >= 0 for c in point.values()):
            raise _RefusalError(f"{name} coordinates must be non-negative integers")


def _image_list(name: str, value: Any, ctx: _Context) -> None:
    if not isinstance(value, list) or not 2 <= len(value) <= 4:
        raise _RefusalError(f"{name} must hold 2 to 4 images")
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"image"}:
            raise _RefusalError(f'{name}[{index}] must be an object {{"image": ...}}')
        _image(f"{name}[{index}].image", item["image"], ctx)


def _model_of(body: dict[str, Any]) -> str:
    model = body.get("model_name")
    return model if isinstance(model, str) else "kling-v1"


def _single_feature(body: dict[str, Any], ctx: _Context) -> None:
    features = {
        "end frame (image_tail)": ("image_tail",),
        "motion brush (static_mask, dynamic_masks)": ("static_mask", "dynamic_masks"),
        "camera_control": ("camera_control",),
    }
    used = [label for label, keys in features.items() if any(k in body for k in keys)]
    if len(used) > 1:
        raise _RefusalError(f"{' and '.join(used)} cannot be combined")


def _cfg_scale_model(body: dict[str, Any], ctx: _Context) -> None:
    # No v2.x model takes cfg_scale, through a proxy neither (providers.md, section D).
    model = _model_of(body)
    if "cfg_scale" in body and not _takes_cfg_scale(model):
        raise _RefusalError(f"cfg_scale is not supported by {model}")


def _takes_cfg_scale(model: str) -> bool:
    # Only the 1.x models: no v2.x takes it, nor kling-v3 (providers.md, section D).
    return model.startswith("kling-v1")


# The official capability map, written here from providers.md section D on its own (not from
# the bot's catalogue), so that a wrong map in the bot fails a test: feature -> model ->
# (modes, durations) it works in, None meaning any.
_Cell = tuple[frozenset[str] | None, frozenset[int] | None]
_PRO_ONLY: _Cell = (frozenset({"pro"}), None)
_CAPABILITIES: dict[str, dict[str, _Cell]] = {
    "end frame (image_tail)": {
        "kling-v1": (None, frozenset({5})),
        "kling-v1-5": _PRO_ONLY,
        "kling-v1-6": _PRO_ONLY,
        "kling-v2-1": _PRO_ONLY,
        "kling-v2-5-turbo": _PRO_ONLY,
        "kling-v2-6": _PRO_ONLY,
        "kling-v3": (None, None),
    },
    "motion brush (static_mask, dynamic_masks)": {
        "kling-v1": (None, frozenset({5})),
        "kling-v1-5": (frozenset({"pro"}), frozenset({5})),
    },
    "camera_control": {
        "kling-v1": (frozenset({"std"}), frozenset({5})),
        "kling-v1-5": (frozenset({"pro"}), frozenset({5})),
    },
    'sound "on"': {"kling-v2-6": _PRO_ONLY, "kling-v3": (None, None)},
}


def _multi_shot(body: dict[str, Any], ctx: _Context) -> None:
    """kling-v3's shots (providers.md, D): ≤ 6, prompts ≤ 512, lengths adding up."""
    keys = ("multi_shot", "shot_type", "multi_prompt")
    if not any(key in body for key in keys):
        return
    model = _model_of(body)
    if model != "kling-v3":
        raise _RefusalError(f"multi_shot is not supported by {model}")
    if body.get("multi_shot") is not True:
        raise _RefusalError("multi_shot must be true with shot_type and multi_prompt")
    if body.get("shot_type") == "intelligence":
        return
    shots = body.get("multi_prompt")
    if body.get("shot_type") != "customize" or not isinstance(shots, list) or not shots:
        raise _RefusalError("shot_type customize needs multi_prompt")
    if len(shots) > 6:
        raise _RefusalError("multi_prompt holds at most 6 shots")
    total = 0
    for index, shot in enumerate(shots, 1):
        if not isinstance(shot, dict) or shot.get("index") != index:
            raise _RefusalError("multi_prompt shots must be numbered from 1")
        prompt = shot.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 512:
            raise _RefusalError("multi_prompt prompts must be 1 to 512 characters")
        value = shot.get("duration")
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise _RefusalError("multi_prompt durations must be whole seconds")
        seconds = int(value)
        if seconds < 1:
            raise _RefusalError("multi_prompt durations must be at least 1 s")
        total += seconds
    if str(total) != str(body.get("duration", "5")):
        raise _RefusalError("multi_prompt durations must add up to duration")


def _capability_map(body: dict[str, Any], ctx: _Context) -> None:
    model, mode = _model_of(body), body.get("mode", "std")
    try:
        duration = int(body.get("duration", 5))
    except (TypeError, ValueError):
        return  # the field check refuses it
    used = {
        "end frame (image_tail)": "image_tail" in body,
        "motion brush (static_mask, dynamic_masks)": "static_mask" in body
        or "dynamic_masks" in body,
        "camera_control": "camera_control" in body,
        'sound "on"': body.get("sound") == "on",
    }
    for feature, on in used.items():
        if not on:
            continue
        cell = _CAPABILITIES[feature].get(model)
        if cell is None:
            raise _RefusalError(f"{feature} is not supported by {model}")
        modes, durations = cell
        if (modes is not None and mode not in modes) or (
            durations is not None and duration not in durations
        ):
            raise _RefusalError(f"{feature} is not supported by {model} in {mode} {duration}s")
    camera = body.get("camera_control")
    if model == "kling-v1-5" and isinstance(camera, dict) and camera.get("type") != "simple":
        raise _RefusalError(f"camera_control type {camera.get('type')} is not supported by {model}")
    if model == "kling-v2-6" and used["end frame (image_tail)"] and used['sound "on"']:
        raise _RefusalError("sound is not supported with image_tail")


def _sound_model(body: dict[str, Any], ctx: _Context) -> None:
    if "sound" in body and _model_of(body) not in ("kling-v2-6", "kling-v3"):
        raise _RefusalError(f"sound is not supported by {_model_of(body)}")


_COMMON_FIELDS: dict[str, _Check] = {
    "mode": _one_of(frozenset({"std", "pro"})),
    "prompt": _text,
    "negative_prompt": _text,
    "duration": _duration,
    "aspect_ratio": _one_of(ASPECT_RATIOS),
    "callback_url": _http_url,
    "external_task_id": _nonempty_string,
}
_I2V_FIELDS: dict[str, _Check] = {
    **_COMMON_FIELDS,
    "model_name": _one_of(MODELS),
    "image": _image,
    "image_tail": _image,
    "static_mask": _image,
    "dynamic_masks": _dynamic_masks,
    "camera_control": _camera_control,
    "cfg_scale": _cfg_scale,
    "sound": _one_of(frozenset({"on", "off"})),
    "multi_shot": lambda name, value, ctx: None,  # checked with the model by _multi_shot
    "shot_type": _one_of(frozenset({"customize", "intelligence"})),
    "multi_prompt": lambda name, value, ctx: None,
}
_MULTI_FIELDS: dict[str, _Check] = {
    **_COMMON_FIELDS,
    "model_name": _multi_model,
    "image_list": _image_list,
}


@dataclass(frozen=True)
class _Schema:
    fields: Mapping[str, _Check]
    required: tuple[str, ...]
    proxy_required: tuple[str, ...]
    rules: tuple[_Rule, ...]

    def validate(self, body: Any, ctx: _Context) -> dict[str, Any]:
        """Return the body without nulls, or raise the refusal the service would answer."""
        if not isinstance(body, dict):
            raise _RefusalError("request body must be a JSON object", code=1200)
        present = {k: v for k, v in body.items() if v is not None}
        unknown = sorted(set(present) - set(self.fields))
        if unknown:
            raise _RefusalError(f"unknown parameter(s): {', '.join(unknown)}")
        required = self.required + (self.proxy_required if ctx.proxy_rules else ())
        if not _takes_cfg_scale(_model_of(present)):
            # tu-zi marks cfg_scale required, but only 1.x models take it (providers.md, D).
            required = tuple(name for name in required if name != "cfg_scale")
        for name in required:
            if name not in present or (present[name] == "" and name != "negative_prompt"):
                raise _RefusalError(f"{name} is required")
        for name, value in present.items():
            self.fields[name](name, value, ctx)
        for rule in self.rules:
            rule(present, ctx)
        return present


_SCHEMAS = {
    "image2video": _Schema(
        _I2V_FIELDS,
        ("image",),
        PROXY_REQUIRED,
        (
            _single_feature,
            _cfg_scale_model,
            _sound_model,
            _duration_model,
            _multi_shot,
            _capability_map,
        ),
    ),
    "multi-image2video": _Schema(_MULTI_FIELDS, ("image_list", "prompt"), (), (_duration_model,)),
}


# ---- the fake ------------------------------------------------------------------------------


class FakeKling(ProviderFake[KlingTask]):
    """An official-Kling stand-in with knobs: auth, timing, outcome, errors and callbacks."""

    callback_field: ClassVar[str] = "callback_url"

    def __init__(
        self,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        api_key: str | None = None,
        prefix: str = "",
        proxy_rules: bool = False,
        video: bytes | None = None,
    ) -> None:
        if (access_key is None) != (secret_key is None):
            raise ValueError("access_key and secret_key go together")
        if access_key is None and api_key is None:
            raise ValueError("give access_key and secret_key, api_key, or all three")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError('prefix must be "" or start with "/" and not end with it')
        super().__init__(
            endpoints=ENDPOINTS, hold_endpoints=HOLD_ENDPOINTS, user_agent="fake-kling", video=video
        )
        self.access_key = access_key
        self.secret_key = secret_key
        self.api_key = api_key
        self.prefix = prefix
        self.proxy_rules = proxy_rules
        self.files: dict[str, bytes] = {}
        self.jwt_tokens: list[str] = []
        self.callback_shape: str = "flat"
        self.max_running: int | None = None
        self.total_quantity: float = 100.0
        self.remaining_quantity: float = 42.0
        self.packs: list[dict[str, Any]] | None = None
        p = prefix
        self.app = Starlette(
            routes=[
                Route(p + I2V_PATH, partial(self._create, "image2video"), methods=["POST"]),
                Route(p + MULTI_PATH, partial(self._create, "multi-image2video"), methods=["POST"]),
                Route(
                    p + I2V_PATH + "/{task_id}",
                    partial(self._query, "image2video"),
                    methods=["GET"],
                ),
                Route(
                    p + MULTI_PATH + "/{task_id}",
                    partial(self._query, "multi-image2video"),
                    methods=["GET"],
                ),
                *(
                    [
                        Route(p + path, self._no_route, methods=["GET"])
                        for path in (I2V_PATH, MULTI_PATH)
                    ]
                    if proxy_rules
                    else [
                        Route(p + I2V_PATH, partial(self._list, "image2video"), methods=["GET"]),
                        Route(
                            p + MULTI_PATH,
                            partial(self._list, "multi-image2video"),
                            methods=["GET"],
                        ),
                    ]
                ),
                Route(p + "/account/costs", self._costs, methods=["GET"]),
                Route(p + "/results/{task_id}.mp4", self._serve_result, methods=["GET"]),
                Route(p + "/files/{name:path}", self._serve_file, methods=["GET"]),
            ],
            middleware=[Middleware(Recorder, fake=self)],
        )

    # ---- knobs and inspection -------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        *,
        code: int,
        message: str = "error",
        http_status: int = 200,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `endpoint` answer `code`/`message` with `http_status`."""
        self._failures.add(endpoint, Failure(code, message, http_status), times)

    async def complete(
        self, task_id: str, *, success: bool = True, message: str = DEFAULT_FAILURE
    ) -> None:
        """End the task now and await delivery of its callbacks, if it has a callback_url."""
        task = self.tasks[task_id]
        if not self._is_final(task):
            self._cancel_timer(task_id)
        self._end(task, success=success, message=message)
        await self._deliver(task)

    def creates(self) -> list[KlingRequest]:
        """Return the create requests (both kinds) received, accepted or not, in order."""
        paths = {self.prefix + I2V_PATH, self.prefix + MULTI_PATH}
        return [r for r in self.requests if r.method == "POST" and r.path in paths]

    # ---- endpoints ------------------------------------------------------------------------

    async def _create(self, kind: str, request: Request) -> Response:
        endpoint = "create" if kind == "image2video" else "multi_create"
        try:
            self._authenticate(request)
            self._take_failure(endpoint)
            body = _SCHEMAS[kind].validate(await _json_body(request), self._context(request))
            external_id = body.get("external_task_id")
            if external_id is not None and self._by_external_id(external_id) is not None:
                raise _RefusalError("external_task_id already exists")
            self._check_capacity()
        except _RefusalError as refusal:
            return refusal.response()
        task = self._new_task(kind, body, str(request.base_url).rstrip("/"))
        info = {} if task.external_task_id is None else {"external_task_id": task.external_task_id}
        return _envelope(
            {
                "task_id": task.task_id,
                "task_status": task.status,
                "task_info": info,
                "created_at": ms(task.created),
                "updated_at": ms(task.updated),
            }
        )

    async def _query(self, kind: str, request: Request) -> Response:
        endpoint = "query" if kind == "image2video" else "multi_query"
        try:
            self._authenticate(request)
            task = self._find(kind, request.path_params["task_id"])
            if task is not None:
                task.polls += 1
            self._take_failure(endpoint)
            if task is None:
                raise _RefusalError("task not found", status=404)
        except _RefusalError as refusal:
            return refusal.response()
        self._advance(task)
        return _envelope(self._task_data(task))

    async def _list(self, kind: str, request: Request) -> Response:
        """The official list query: by `external_task_id`, or a page of the newest tasks."""
        endpoint = "lookup" if kind == "image2video" else "multi_lookup"
        try:
            self._authenticate(request)
            self._take_failure(endpoint)
            external_id = request.query_params.get("external_task_id")
            if external_id is not None:
                task = self._by_external_id(external_id)
                if task is None or task.kind != kind:
                    raise _RefusalError("task not found", status=404)
                task.polls += 1
                self._advance(task)
                return _envelope(self._task_data(task))
            page = _int_param(request, "pageNum", 1, 1, 1000)
            size = _int_param(request, "pageSize", 30, 1, 500)
        except _RefusalError as refusal:
            return refusal.response()
        mine = sorted(
            (task for task in self.tasks.values() if task.kind == kind),
            key=lambda task: task.created,
            reverse=True,
        )[(page - 1) * size : page * size]
        for task in mine:
            task.polls += 1
            self._advance(task)
        return _envelope([self._task_data(task) for task in mine])

    async def _no_route(self, request: Request) -> Response:
        return not_found()

    async def _costs(self, request: Request) -> Response:
        try:
            self._authenticate(request)
            self._take_failure("costs")
            start = _ms_param(request, "start_time")
            end = _ms_param(request, "end_time")
            if start > end:
                raise _RefusalError("start_time must not be after end_time")
        except _RefusalError as refusal:
            return refusal.response()
        packs = self.packs
        if packs is None:
            packs = [
                resource_pack(
                    "Video pack", remaining=self.remaining_quantity, total=self.total_quantity
                )
            ]
        return _envelope({"code": 0, "msg": "", "resource_pack_subscribe_infos": packs})

    async def _serve_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        data = self.files.get(name)
        if data is None:
            return not_found()
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, media_type=mime)

    # ---- auth -----------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header or (scheme == "Bearer" and not token.strip()):
            raise _RefusalError("Authorization is empty", code=1001)
        if scheme != "Bearer":
            raise _RefusalError("Authentication failed: expected a Bearer token", code=1000)
        if self.api_key is not None and hmac.compare_digest(token.encode(), self.api_key.encode()):
            return
        if self.secret_key is None:
            raise _RefusalError("Authentication failed", code=1000)
        self._check_jwt(token)

    def _check_jwt(self, token: str) -> None:
        assert self.secret_key is not None
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "HS256" or header.get("typ") != "JWT":
                raise jwt.InvalidTokenError("header must be alg HS256, typ JWT")
            with warnings.catch_warnings():
                # Short secrets are the caller's business; PyJWT warns about them on signing.
                warnings.simplefilter("ignore", jwt.InsecureKeyLengthWarning)
                claims = jwt.decode(
                    token,
                    self.secret_key,
                    algorithms=["HS256"],
                    issuer=self.access_key,
                    leeway=0,
                    options={"require": ["iss", "exp", "nbf"]},
                )
        except jwt.ExpiredSignatureError:
            raise _RefusalError("Authorization has expired", code=1004) from None
        except jwt.ImmatureSignatureError:
            raise _RefusalError("Authorization is not yet valid", code=1003) from None
        except jwt.PyJWTError as error:
            raise _RefusalError(f"Authentication failed: {error}", code=1000) from None
        exp = claims["exp"]
        if not _is_number(exp) or exp - time.time() > MAX_TOKEN_LIFETIME:
            raise _RefusalError("Authentication failed: token lives longer than 1800 s", 1000)
        self.jwt_tokens.append(token)

    # ---- task lifecycle -------------------------------------------------------------------

    def _context(self, request: Request) -> _Context:
        files_url = f"{str(request.base_url).rstrip('/')}{self.prefix}/files/"
        return _Context(self.proxy_rules, files_url, self.files)

    def _check_capacity(self) -> None:
        running = sum(1 for task in self.tasks.values() if task.status not in FINAL_STATES)
        if self.max_running is not None and running >= self.max_running:
            raise _RefusalError("parallel task limit reached", code=1303)

    def _new_task(self, kind: str, body: dict[str, Any], base: str) -> KlingTask:
        task_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        now = time.time()
        task = KlingTask(
            task_id=task_id,
            kind=kind,
            body=body,
            external_task_id=body.get("external_task_id"),
            callback_url=body.get("callback_url"),
            status="submitted",
            status_msg="",
            created=now,
            updated=now,
        )
        self._add_task(task, base)
        return task

    def _endpoint_of(self, method: str, path: str) -> str | None:
        if not path.startswith(self.prefix):
            return None
        rest = path[len(self.prefix) :]
        for base, create, query, lookup in (
            (I2V_PATH, "create", "query", "lookup"),
            (MULTI_PATH, "multi_create", "multi_query", "multi_lookup"),
        ):
            if rest == base:
                return create if method == "POST" else lookup
            if rest.startswith(base + "/"):
                return query
        if rest == "/account/costs":
            return "costs"
        return "result" if rest.startswith("/results/") else None

    def _find(self, kind: str, key: str) -> KlingTask | None:
        task = self.tasks.get(key)
        if task is None and not self.proxy_rules:
            # The official path form takes either id; tu-zi documents only its own task_id.
            task = self._by_external_id(key)
        return task if task is not None and task.kind == kind else None

    def _by_external_id(self, external_id: str) -> KlingTask | None:
        for task in self.tasks.values():
            if task.external_task_id == external_id:
                return task
        return None

    def _is_final(self, task: KlingTask) -> bool:
        return task.status in FINAL_STATES

    def _succeeded(self, task: KlingTask) -> bool:
        return task.status == "succeed"

    def _progress(self, task: KlingTask) -> None:
        status = "submitted" if task.polls <= 1 else "processing"
        if status != task.status:
            task.status = status
            task.updated = time.time()

    def _end(self, task: KlingTask, *, success: bool, message: str = DEFAULT_FAILURE) -> None:
        now = time.time()
        task.completed = task.updated = now
        if success:
            task.status, task.status_msg = "succeed", ""
            task.result_url = self._result_url(task.task_id)
        else:
            task.status, task.status_msg = "failed", message
            task.result_url = None

    def _task_data(self, task: KlingTask) -> dict[str, Any]:
        info = {} if task.external_task_id is None else {"external_task_id": task.external_task_id}
        data: dict[str, Any] = {
            "task_id": task.task_id,
            "task_status": task.status,
            "task_status_msg": task.status_msg,
            "task_info": info,
            "created_at": ms(task.created),
            "updated_at": ms(task.updated),
        }
        if task.status == "succeed":
            video = {
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, task.task_id)),
                "url": task.result_url,
                "duration": str(task.body.get("duration", "5")),
            }
            data["task_result"] = {"videos": [video]}
        return data

    def _result_url(self, task_id: str) -> str:
        return f"{self._bases[task_id]}{self.prefix}/results/{task_id}.mp4"

    def _as_if(self, task: KlingTask, status: str | None) -> KlingTask:
        """Return a copy of the task as it would look in `status` (the task itself when None)."""
        if status is None or status == task.status:
            return task
        view = dataclasses.replace(
            task, status=status, status_msg="", completed=None, result_url=None
        )
        if status in FINAL_STATES:
            view.completed = task.completed or task.updated
        if status == "succeed":
            view.result_url = task.result_url or self._result_url(task.task_id)
        elif status == "failed":
            view.status_msg = task.status_msg or DEFAULT_FAILURE
        return view

    def _callback_payload(self, task: KlingTask) -> Any:
        data = self._task_data(task)
        if self.callback_shape != "envelope":
            return data
        return {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()), "data": data}

    def _take_failure(self, endpoint: str) -> None:
        if (failure := self._failures.take(endpoint)) is not None:
            raise _RefusalError(failure.message, failure.code, failure.http_status)

    def _unavailable(self) -> Response:
        return _envelope(None, code=5001, message="Service Unavailable", status=503)


async def _json_body(request: Request) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise _RefusalError("Content-Type must be application/json", code=1200)
    try:
        return json.loads(await request.body())
    except ValueError:
        raise _RefusalError("request body is not valid JSON", code=1200) from None


def _int_param(request: Request, name: str, default: int, least: int, most: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not least <= int(value) <= most:
        raise _RefusalError(f"{name} must be an integer from {least} to {most}")
    return int(value)


def _ms_param(request: Request, name: str) -> int:
    value = request.query_params.get(name, "")
    if not value.isascii() or not value.isdigit():
        raise _RefusalError(f"{name} is required and must be an integer (ms)")
    if int(value) < _MIN_MS:
        raise _RefusalError(f"{name} must be in milliseconds")
    return int(value)
