"""A loopback fake of kie.ai: jobs API, file-upload API and hosting of uploads and results.

One app serves both kie hosts, so tests point KIE_API_URL and KIE_UPLOAD_URL at the same
``serve(fake.app)`` URL. Tests must ``await fake.aclose()`` (or use ``async with FakeKie()``)
before their event loop ends: it cancels the finish timers and closes the callback client.

Notes for test authors: ``uploads`` is keyed by ``filePath`` (``<uploadPath>/<fileName>``);
``finish_after`` is read when a task is created, ``outcome`` when it ends (anything but
"success" fails it); every authorized recordInfo call naming a known task counts as a poll,
injected failures included; ``complete()`` on a finished task ends it again and re-sends.

Stopping the bot at an exact step: ``hold(endpoint, after=False, times=None)`` holds the next
``times`` requests (all when None) to "createTask", "recordInfo", "upload", "credit" or
"result" (the video download) until ``Hold.release()``. A request is recorded in ``requests``
first; a hold before the work does nothing else (no task, no upload, no poll counted), one
with ``after=True`` does the work and holds only the answer. Each request is taken by at most
one hold, the oldest active one. ``delay(endpoint, seconds, times=None)`` answers late, after
the work; ``seconds=0`` clears it. A held or delayed request whose client leaves (the bot was
killed) ends quietly; one still waiting when the server shuts down (the test leaves ``serve()``)
or at ``aclose()`` is answered 503. ``send_callback(task_id, state=..., times=...)`` posts a
task's callback as if it were in any state, leaving the task alone: for duplicate, stale and
out-of-order callbacks. The hold, delay and callback plumbing lives in ``tests.fakes.common``.
``firewall_block(*endpoints, times=None)`` answers as Cloudflare does when it bans a client
(providers.md D): HTTP 403 with the plain text ``error code: 1010``, before any key is checked.
``status_limit`` refuses a key's recordInfo queries beyond 10 in any second (issue 12: "kie
documents 10 status queries per second") with kie's rate-limit answer, HTTP 200 and code 429;
a refused query still counts as a poll but not towards the limit, and consumes no injected
failure. Set it to None to lift the limit, or to another ``SlidingWindow``.

Result links age as kie's do (providers.md A: result URLs may expire after 24 h, media is kept
14 days): with ``results_expired`` set, a result's own URL answers 404, and
``POST /api/v1/common/download-url {"url"}`` (the documented common API) still gives a link
valid 20 minutes (``FRESH_FOR``) to a kie-made result; one kie did not make is refused with
code 422 as kie documents ("external file URLs are not supported"). With ``results_deleted``
set (past the 14 days) no link is given: code 404, kie's "the requested resource does not
exist". ``fresh_links`` lists the links given.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import itertools
import json
import mimetypes
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message as _MimeHeaders
from typing import Any, ClassVar
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes.common import (
    DEFAULT_VIDEO,
    Failure,
    ProviderFake,
    RecordedRequest,
    Recorder,
    SlidingWindow,
    ms,
    not_found,
    parse_json,
)

__all__ = [
    "DEFAULT_VIDEO",
    "ENDPOINTS",
    "HOLD_ENDPOINTS",
    "FakeKie",
    "KieRequest",
    "KieTask",
]

ENDPOINTS = frozenset({"createTask", "recordInfo", "upload", "credit", "downloadUrl"})
HOLD_ENDPOINTS = ENDPOINTS | {"result"}
FINAL_STATES = frozenset({"success", "fail"})
CREATE_PATH = "/api/v1/jobs/createTask"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
# How long a link from download-url works (kie's common API page: 20 minutes).
FRESH_FOR = 20 * 60.0
UNAUTHORIZED_MSG = "You do not have access permissions"
NOT_ACCESSIBLE_MSG = "image url not accessible"
DEFAULT_FAIL_CODE = "500"
DEFAULT_FAIL_MSG = "content moderation failed"
# Code 429 as kie's pages describe it (seed 002).
RATE_LIMITED_MSG = "Rate limited: the request limit for this resource has been exceeded"
FIREWALL_BODY = "error code: 1010"
_PATH_ENDPOINTS = {
    CREATE_PATH: "createTask",
    "/api/v1/jobs/recordInfo": "recordInfo",
    "/api/v1/chat/credit": "credit",
    DOWNLOAD_URL_PATH: "downloadUrl",
    "/api/file-stream-upload": "upload",
    "/api/file-base64-upload": "upload",
}


KieRequest = RecordedRequest


@dataclass
class KieTask:
    """One generation task created through createTask."""

    task_id: str
    model: str
    input: dict[str, Any]
    callback_url: str | None
    state: str
    created: float
    completed: float | None = None
    polls: int = 0
    fail_code: str | None = None
    fail_msg: str | None = None
    param: dict[str, Any] = field(default_factory=dict)
    result_url: str | None = None
    updated: float = 0.0


@dataclass(frozen=True)
class _ModelSpec:
    prompt_max: int
    image_list: bool
    sound: bool
    duration_required: bool
    negative_max: int | None
    cfg_scale: bool
    tail_image: bool
    # The model's page lists image/jpeg and image/png only (providers.md, section D).
    jpeg_png_only: bool = False
    durations: tuple[str, ...] = ("5", "10")
    # How many `image_urls` it takes (kling-3.0: first, or first and last frame).
    max_images: int = 1
    sound_required: bool = True
    modes: tuple[str, ...] = ()  # input.mode, optional
    resolutions: tuple[str, ...] = ()  # input.resolution, required when the model has it
    aspect_ratio: bool = False
    # multi_shots + multi_prompt: at most this many shots (0: none), prompts up to 500.
    shots_max: int = 0


_THREE_TO_FIFTEEN = tuple(str(seconds) for seconds in range(3, 16))
_MODELS: dict[str, _ModelSpec] = {
    "kling-2.6/image-to-video": _ModelSpec(
        prompt_max=1000,
        image_list=True,
        sound=True,
        duration_required=True,
        negative_max=None,
        cfg_scale=False,
        tail_image=False,
        jpeg_png_only=True,
    ),
    "kling/v2-1-pro": _ModelSpec(
        prompt_max=5000,
        image_list=False,
        sound=False,
        duration_required=False,
        negative_max=500,
        cfg_scale=True,
        tail_image=True,
    ),
    "kling/v2-5-turbo-image-to-video-pro": _ModelSpec(
        prompt_max=2500,
        image_list=False,
        sound=False,
        duration_required=False,
        negative_max=2496,
        cfg_scale=True,
        tail_image=True,
        jpeg_png_only=True,
    ),
    # providers.md, section D: the newer models.
    "kling-3.0/video": _ModelSpec(
        prompt_max=2500,
        image_list=True,
        sound=True,
        duration_required=False,
        negative_max=None,
        cfg_scale=False,
        tail_image=False,
        durations=_THREE_TO_FIFTEEN,
        max_images=2,
        sound_required=False,
        modes=("std", "pro", "4K"),
        aspect_ratio=True,
        shots_max=5,
    ),
    "kling/v3-turbo-image-to-video": _ModelSpec(
        prompt_max=2500,
        image_list=True,
        sound=False,
        duration_required=True,
        negative_max=None,
        cfg_scale=False,
        tail_image=False,
        jpeg_png_only=True,
        durations=_THREE_TO_FIFTEEN,
        resolutions=("720p", "1080p"),
    ),
    "kling/v2-1-standard": _ModelSpec(
        prompt_max=5000,
        image_list=False,
        sound=False,
        duration_required=False,
        negative_max=500,
        cfg_scale=True,
        tail_image=False,
    ),
    "kling/v2-1-master-image-to-video": _ModelSpec(
        prompt_max=5000,
        image_list=False,
        sound=False,
        duration_required=False,
        negative_max=500,
        cfg_scale=True,
        tail_image=False,
    ),
}


_JPEG_PNG_MAGIC = (b"\xff\xd8", b"\x89PNG\r\n\x1a\n")


class _RejectedError(Exception):
    """A request the real service would refuse; carries the code and message to answer with."""

    def __init__(self, msg: str, code: int = 422) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


@dataclass
class _Part:
    data: bytes
    filename: str | None
    content_type: str | None


def _parse_multipart(body: bytes, content_type: str) -> dict[str, _Part]:
    """Split a multipart/form-data body into its parts, keeping file bytes exact."""
    headers = _MimeHeaders()
    headers["content-type"] = content_type
    boundary = headers.get_param("boundary")
    if headers.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError("not multipart/form-data")
    parts: dict[str, _Part] = {}
    # Prefixing CRLF lets every delimiter, including the first, be matched as CRLF--boundary.
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        _, _, rest = chunk.partition(b"\r\n")
        head, sep, data = rest.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("malformed part")
        part_headers = _MimeHeaders()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, colon, value = line.partition(":")
            if colon:
                part_headers[header.strip()] = value.strip()
        field_name = part_headers.get_param("name", header="content-disposition")
        if not isinstance(field_name, str):
            continue
        ctype = part_headers.get("content-type")
        parts[field_name] = _Part(data, part_headers.get_filename(), str(ctype) if ctype else None)
    return parts


class _Firewall:
    """ASGI middleware: Cloudflare's ban of a client, for the endpoints a test blocks."""

    def __init__(self, app: ASGIApp, fake: FakeKie) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.fake._endpoint_of(scope["method"], scope["path"])
            if scope["type"] == "http"
            else None
        )
        if endpoint is not None and self.fake._firewall_takes(endpoint):
            await PlainTextResponse(FIREWALL_BODY, status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _envelope(code: int, msg: str, data: Any = None, *, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg, "data": data}, status_code=status)


def _upload_envelope(code: int, msg: str, data: Any = None, *, status: int = 200) -> JSONResponse:
    body = {"success": code == 200, "code": code, "msg": msg, "data": data}
    return JSONResponse(body, status_code=status)


class FakeKie(ProviderFake[KieTask]):
    """A kie.ai stand-in with knobs: timing, outcome, injected errors and callbacks."""

    callback_field: ClassVar[str] = "callBackUrl"

    def __init__(
        self,
        api_key: str = "kie-test-key",
        *,
        hmac_key: str | None = None,
        video: bytes | None = None,
    ) -> None:
        super().__init__(
            endpoints=ENDPOINTS, hold_endpoints=HOLD_ENDPOINTS, user_agent="fake-kie", video=video
        )
        self.api_key = api_key
        self.hmac_key = hmac_key
        self.uploads: dict[str, bytes] = {}
        self.credits: int = 1234
        self._mimes: dict[str, str] = {}
        self._url_files: dict[str, str] = {}
        self._counter = itertools.count(1)
        # endpoint -> requests still to block (None: all of them)
        self._firewall: dict[str, int | None] = {}
        self.status_limit: SlidingWindow | None = SlidingWindow(10, 1.0)
        self.results_expired = False
        self.results_deleted = False
        self.fresh_links: list[str] = []
        # token -> (task id, when the link stops working, monotonic)
        self._fresh: dict[str, tuple[str, float]] = {}
        self.app = Starlette(
            routes=[
                Route(CREATE_PATH, self._create_task, methods=["POST"]),
                Route("/api/v1/jobs/recordInfo", self._record_info, methods=["GET"]),
                Route("/api/v1/chat/credit", self._credit, methods=["GET"]),
                Route(DOWNLOAD_URL_PATH, self._download_url, methods=["POST"]),
                Route("/api/file-stream-upload", self._upload_stream, methods=["POST"]),
                Route("/api/file-base64-upload", self._upload_base64, methods=["POST"]),
                Route("/files/{path:path}", self._serve_file, methods=["GET"]),
                Route("/results/{task_id}.mp4", self._serve_own_result, methods=["GET"]),
                Route("/tempfile/{token}.mp4", self._serve_fresh, methods=["GET"]),
            ],
            middleware=[Middleware(Recorder, fake=self), Middleware(_Firewall, fake=self)],
        )

    # ---- knobs and inspection -------------------------------------------------------------

    def firewall_block(self, *endpoints: str, times: int | None = None) -> None:
        """Refuse the next `times` calls (None: all) of `endpoints` (none: every one) as banned."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        for endpoint in endpoints or sorted(HOLD_ENDPOINTS):
            if endpoint not in HOLD_ENDPOINTS:
                raise ValueError(f"endpoint must be one of {sorted(HOLD_ENDPOINTS)}")
            self._firewall[endpoint] = times

    def fail_next(
        self,
        endpoint: str,
        *,
        code: int,
        msg: str = "error",
        http_status: int = 200,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `endpoint` answer `code`/`msg` with HTTP `http_status`."""
        self._failures.add(endpoint, Failure(code, msg, http_status), times)

    async def complete(
        self,
        task_id: str,
        *,
        success: bool = True,
        fail_msg: str = DEFAULT_FAIL_MSG,
        fail_code: str = DEFAULT_FAIL_CODE,
    ) -> None:
        """End the task now and await delivery of its callbacks, if it has a callBackUrl."""
        task = self.tasks[task_id]
        if not self._is_final(task):
            self._cancel_timer(task_id)
        self._end(task, success=success, fail_code=fail_code, fail_msg=fail_msg)
        await self._deliver(task)

    def creates(self) -> list[KieRequest]:
        """Return the createTask requests received, in order."""
        return [r for r in self.requests if r.method == "POST" and r.path == CREATE_PATH]

    # ---- jobs API -------------------------------------------------------------------------

    async def _create_task(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        if (failure := self._take_failure("createTask")) is not None:
            return _envelope(failure.code, failure.message, status=failure.http_status)
        try:
            body, model, callback_url, input_ = self._validate_create(
                parse_json(await request.body())
            )
        except _RejectedError as invalid:
            return _envelope(invalid.code, invalid.msg)
        task_id = f"task_kling_{next(self._counter):04d}{secrets.token_hex(6)}"
        now = time.time()
        task = KieTask(
            task_id=task_id,
            model=model,
            input=input_,
            callback_url=callback_url,
            state="waiting",
            created=now,
            param=body,
            updated=now,
        )
        self._add_task(task, str(request.base_url).rstrip("/"))
        return _envelope(200, "success", {"taskId": task_id})

    async def _record_info(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        task_id = request.query_params.get("taskId", "")
        task = self.tasks.get(task_id)
        if task is not None:
            task.polls += 1
        limit = self.status_limit
        if limit is not None and not limit.admit(request.headers["authorization"]):
            return _envelope(429, RATE_LIMITED_MSG)
        if (failure := self._take_failure("recordInfo")) is not None:
            return _envelope(failure.code, failure.message, status=failure.http_status)
        if not task_id:
            return _envelope(422, "taskId is required")
        if task is None:
            return _envelope(404, "task not found")
        self._advance(task)
        return _envelope(200, "success", self._task_data(task))

    async def _credit(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        if (failure := self._take_failure("credit")) is not None:
            return _envelope(failure.code, failure.message, status=failure.http_status)
        return _envelope(200, "success", self.credits)

    async def _download_url(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        if (failure := self._take_failure("downloadUrl")) is not None:
            return _envelope(failure.code, failure.message, status=failure.http_status)
        body = parse_json(await request.body())
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            return _envelope(422, "url is required")
        task = self._task_with_result(url)
        if task is None:
            return _envelope(422, "Invalid URL: external file URLs are not supported")
        if self.results_deleted:
            return _envelope(404, "file not found")
        token = secrets.token_hex(8)
        self._fresh[token] = (task.task_id, time.monotonic() + FRESH_FOR)
        link = f"{self._bases[task.task_id]}/tempfile/{token}.mp4"
        self.fresh_links.append(link)
        return _envelope(200, "success", link)

    def _task_with_result(self, url: str) -> KieTask | None:
        """The succeeded task whose own result `url` is (not a URL a test put in its place)."""
        for task in self.tasks.values():
            if self._succeeded(task) and url == self._result_url(task.task_id):
                return task
        return None

    async def _serve_own_result(self, request: Request) -> Response:
        if self.results_expired:
            return not_found()
        return await self._serve_result(request)

    async def _serve_fresh(self, request: Request) -> Response:
        task_id, until = self._fresh.get(request.path_params["token"], ("", 0.0))
        if time.monotonic() > until or self.results_deleted:
            return not_found()
        task = self.tasks.get(task_id)
        if task is None or not self._succeeded(task):
            return not_found()
        return self._video_response()

    # ---- upload API and hosting -----------------------------------------------------------

    async def _upload_stream(self, request: Request) -> Response:
        if (refused := self._refuse_upload(request)) is not None:
            return refused
        try:
            fields = _parse_multipart(await request.body(), request.headers.get("content-type", ""))
        except ValueError:
            return _upload_envelope(400, "request must be multipart/form-data")
        file = fields.get("file")
        if file is None or not file.data:
            return _upload_envelope(400, "file is required")
        upload_path = fields["uploadPath"].data.decode() if "uploadPath" in fields else ""
        name_field = fields.get("fileName")
        file_name = name_field.data.decode() if name_field is not None else (file.filename or "")
        mime = file.content_type
        if mime is None or mime == "application/octet-stream":
            mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        return self._store(request, file.data, upload_path, file_name, mime)

    async def _upload_base64(self, request: Request) -> Response:
        if (refused := self._refuse_upload(request)) is not None:
            return refused
        body = parse_json(await request.body())
        if not isinstance(body, dict):
            return _upload_envelope(400, "request body must be a JSON object")
        encoded = body.get("base64Data")
        if not isinstance(encoded, str) or not encoded:
            return _upload_envelope(400, "base64Data is required")
        mime: str | None = None
        if encoded.startswith("data:"):
            header, _, encoded = encoded.partition(",")
            kind, *params = header[len("data:") :].split(";")
            if "base64" not in params:
                return _upload_envelope(400, "data URL must be base64-encoded")
            mime = kind or None
        try:
            data = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            return _upload_envelope(400, "base64Data is not valid base64")
        if not data:
            return _upload_envelope(400, "file is required")
        file_name = body.get("fileName")
        if not isinstance(file_name, str) or not file_name:
            extension = mimetypes.guess_extension(mime or "") or ".bin"
            file_name = f"{secrets.token_hex(8)}{extension}"
        if mime is None:
            mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        upload_path = body.get("uploadPath")
        return self._store(
            request, data, upload_path if isinstance(upload_path, str) else "", file_name, mime
        )

    def _refuse_upload(self, request: Request) -> Response | None:
        if not self._authorized(request):
            return _upload_envelope(401, UNAUTHORIZED_MSG, status=401)
        if (failure := self._take_failure("upload")) is not None:
            return _upload_envelope(failure.code, failure.message, status=failure.http_status)
        return None

    def _store(
        self, request: Request, data: bytes, upload_path: str, file_name: str, mime: str
    ) -> Response:
        folder = upload_path.strip().strip("/")
        if not folder:
            return _upload_envelope(400, "uploadPath is required")
        # Only the last path segment counts, as a file name cannot climb out of its folder.
        name = file_name.replace("\\", "/").rsplit("/", 1)[-1] or secrets.token_hex(8)
        file_path = f"{folder}/{name}"
        self.uploads[file_path] = data
        self._mimes[file_path] = mime
        download_url = f"{str(request.base_url).rstrip('/')}/files/{quote(file_path)}"
        self._url_files[download_url] = file_path
        uploaded_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return _upload_envelope(
            200,
            "File uploaded successfully",
            {
                "fileName": name,
                "filePath": file_path,
                "downloadUrl": download_url,
                "fileSize": len(data),
                "mimeType": mime,
                "uploadedAt": uploaded_at,
            },
        )

    async def _serve_file(self, request: Request) -> Response:
        file_path = request.path_params["path"]
        data = self.uploads.get(file_path)
        if data is None:
            return not_found()
        return Response(data, media_type=self._mimes.get(file_path, "application/octet-stream"))

    # ---- task lifecycle -------------------------------------------------------------------

    def _validate_create(self, body: Any) -> tuple[dict[str, Any], str, str | None, dict[str, Any]]:
        if not isinstance(body, dict):
            raise _RejectedError("request body must be a JSON object", code=400)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _RejectedError("model is required")
        spec = _MODELS.get(model)
        if spec is None:
            raise _RejectedError(f"model {model} is not supported")
        callback_url = body.get("callBackUrl")
        if callback_url not in (None, "") and not (
            isinstance(callback_url, str) and callback_url.startswith(("http://", "https://"))
        ):
            raise _RejectedError("callBackUrl must be an http(s) URL")
        input_ = body.get("input")
        if not isinstance(input_, dict):
            raise _RejectedError("input is required")
        self._validate_input(spec, input_)
        return body, model, callback_url or None, input_

    def _validate_input(self, spec: _ModelSpec, input_: dict[str, Any]) -> None:
        prompt = input_.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _RejectedError("input.prompt is required")
        if len(prompt) > spec.prompt_max:
            raise _RejectedError(f"input.prompt must be at most {spec.prompt_max} characters")
        if spec.image_list:
            urls = input_.get("image_urls")
            if not isinstance(urls, list) or not urls:
                raise _RejectedError("input.image_urls is required")
            if len(urls) > spec.max_images:
                most = "exactly one url" if spec.max_images == 1 else f"1 to {spec.max_images} urls"
                raise _RejectedError(f"input.image_urls must contain {most}")
            for url in urls:
                self._check_image(url, spec)
        else:
            url = input_.get("image_url")
            if not isinstance(url, str) or not url:
                raise _RejectedError("input.image_url is required")
            self._check_image(url, spec)
        sound = input_.get("sound")
        if (
            spec.sound
            and not isinstance(sound, bool)
            and (spec.sound_required or sound is not None)
        ):
            raise _RejectedError("input.sound is required and must be a boolean")
        duration = input_.get("duration")
        if duration is None:
            if spec.duration_required:
                raise _RejectedError("input.duration is required")
        elif not isinstance(duration, str) or duration not in spec.durations:
            allowed = " to ".join((spec.durations[0], spec.durations[-1]))
            raise _RejectedError(f"input.duration must be a string from {allowed}")
        mode = input_.get("mode")
        if spec.modes and mode is not None and mode not in spec.modes:
            raise _RejectedError(f"input.mode must be one of {', '.join(spec.modes)}")
        resolution = input_.get("resolution")
        if spec.resolutions and resolution not in spec.resolutions:
            raise _RejectedError(f"input.resolution must be {' or '.join(spec.resolutions)}")
        self._check_shots(spec, input_)
        ratio = input_.get("aspect_ratio")
        if spec.aspect_ratio and ratio is not None and ratio not in ("16:9", "9:16", "1:1"):
            raise _RejectedError("input.aspect_ratio must be 16:9, 9:16 or 1:1")
        negative = input_.get("negative_prompt")
        if spec.negative_max is not None and negative is not None:
            if not isinstance(negative, str):
                raise _RejectedError("input.negative_prompt must be a string")
            if len(negative) > spec.negative_max:
                raise _RejectedError(
                    f"input.negative_prompt must be at most {spec.negative_max} characters"
                )
        cfg_scale = input_.get("cfg_scale")
        if spec.cfg_scale and cfg_scale is not None:
            number = isinstance(cfg_scale, int | float) and not isinstance(cfg_scale, bool)
            if not number or not 0 <= cfg_scale <= 1:
                raise _RejectedError("input.cfg_scale must be a number between 0 and 1")
        tail = input_.get("tail_image_url")
        # kie's own examples send "" for "no end frame".
        if spec.tail_image and tail not in (None, ""):
            self._check_image(tail, spec)

    def _check_shots(self, spec: _ModelSpec, input_: dict[str, Any]) -> None:
        """kling-3.0's multi-shot (providers.md, D): ≤ 5 shots of 1-12 s, prompts ≤ 500."""
        on, shots = input_.get("multi_shots"), input_.get("multi_prompt")
        if on is None and shots is None:
            return
        if not spec.shots_max:
            raise _RejectedError("input.multi_shots is not supported by this model")
        if on is not True or not isinstance(shots, list) or not 1 <= len(shots) <= spec.shots_max:
            raise _RejectedError(f"input.multi_prompt must hold 1 to {spec.shots_max} shots")
        total = 0
        for shot in shots:
            prompt = shot.get("prompt") if isinstance(shot, dict) else None
            seconds = shot.get("duration") if isinstance(shot, dict) else None
            if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 500:
                raise _RejectedError("input.multi_prompt[].prompt must be 1 to 500 characters")
            if not isinstance(seconds, int) or isinstance(seconds, bool) or not 1 <= seconds <= 12:
                raise _RejectedError("input.multi_prompt[].duration must be an integer 1 to 12")
            total += seconds
        if str(total) != input_.get("duration"):
            raise _RejectedError("input.multi_prompt durations must add up to input.duration")
        if len(input_.get("image_urls") or []) > 1:
            raise _RejectedError("input.image_urls takes the first frame only with multi_shots")

    def _check_image(self, url: Any, spec: _ModelSpec) -> None:
        file_path = self._url_files.get(url) if isinstance(url, str) else None
        if file_path is None or file_path not in self.uploads:
            raise _RejectedError(NOT_ACCESSIBLE_MSG)
        if spec.jpeg_png_only and not self.uploads[file_path].startswith(_JPEG_PNG_MAGIC):
            raise _RejectedError("image type not supported: only image/jpeg and image/png")

    def _is_final(self, task: KieTask) -> bool:
        return task.state in FINAL_STATES

    def _succeeded(self, task: KieTask) -> bool:
        return task.state == "success"

    def _progress(self, task: KieTask) -> None:
        state = "waiting" if task.polls <= 1 else "queuing" if task.polls == 2 else "generating"
        if state != task.state:
            task.state = state
            task.updated = time.time()

    def _end(
        self,
        task: KieTask,
        *,
        success: bool,
        fail_code: str = DEFAULT_FAIL_CODE,
        fail_msg: str = DEFAULT_FAIL_MSG,
    ) -> None:
        now = time.time()
        task.state = "success" if success else "fail"
        task.completed = now
        task.updated = now
        if success:
            task.result_url = self._result_url(task.task_id)
            task.fail_code = task.fail_msg = None
        else:
            task.result_url = None
            task.fail_code, task.fail_msg = fail_code, fail_msg

    def _task_data(self, task: KieTask) -> dict[str, Any]:
        result = {"resultUrls": [task.result_url]} if task.result_url is not None else None
        # costTime and completeTime are given on success only (seed 000).
        done = task.completed if task.state == "success" else None
        cost = None if done is None else int((done - task.created) * 1000)
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": task.state,
            "param": json.dumps(task.param, ensure_ascii=False, separators=(",", ":")),
            "resultJson": json.dumps(result, separators=(",", ":")) if result else "",
            "failCode": task.fail_code,
            "failMsg": task.fail_msg,
            "costTime": cost,
            "completeTime": ms(done),
            "createTime": ms(task.created),
            "updateTime": ms(task.updated),
        }

    def _result_url(self, task_id: str) -> str:
        return f"{self._bases[task_id]}/results/{task_id}.mp4"

    def _as_if(self, task: KieTask, state: str | None) -> KieTask:
        """Return a copy of the task as it would look in `state` (the task itself when None)."""
        if state is None or state == task.state:
            return task
        view = dataclasses.replace(
            task, state=state, completed=None, result_url=None, fail_code=None, fail_msg=None
        )
        if state in FINAL_STATES:
            view.completed = task.completed or task.updated
        if state == "success":
            view.result_url = task.result_url or self._result_url(task.task_id)
        elif state == "fail":
            view.fail_code = task.fail_code or DEFAULT_FAIL_CODE
            view.fail_msg = task.fail_msg or DEFAULT_FAIL_MSG
        return view

    def _callback_payload(self, task: KieTask) -> Any:
        failed = task.state == "fail"
        return {
            "code": 501 if failed else 200,
            "msg": (task.fail_msg or "generation failed") if failed else "success",
            "data": self._task_data(task),
        }

    def _callback_headers(self, task: KieTask) -> dict[str, str]:
        if self.hmac_key is None:
            return {}
        timestamp = str(int(time.time()))
        digest = hmac.new(
            self.hmac_key.encode(), f"{task.task_id}.{timestamp}".encode(), hashlib.sha256
        ).digest()
        return {
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": base64.b64encode(digest).decode(),
        }

    # ---- helpers --------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def _firewall_takes(self, endpoint: str) -> bool:
        if endpoint not in self._firewall:
            return False
        left = self._firewall[endpoint]
        if left is None:
            return True
        if left <= 1:
            del self._firewall[endpoint]
        else:
            self._firewall[endpoint] = left - 1
        return True

    def _take_failure(self, endpoint: str) -> Failure | None:
        return self._failures.take(endpoint)

    def _endpoint_of(self, method: str, path: str) -> str | None:
        if path.startswith(("/results/", "/tempfile/")):
            return "result"
        return _PATH_ENDPOINTS.get(path)

    def _unavailable(self) -> Response:
        return _envelope(503, "Service Unavailable", status=503)
