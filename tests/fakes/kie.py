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
out-of-order callbacks. ``Hold`` and ``Gates`` live here but serve the other fakes too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import itertools
import json
import math
import mimetypes
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message as _MimeHeaders
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qsl, quote

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

__all__ = [
    "DEFAULT_VIDEO",
    "ENDPOINTS",
    "HOLD_ENDPOINTS",
    "FakeKie",
    "Gates",
    "Hold",
    "KieRequest",
    "KieTask",
]

ENDPOINTS = frozenset({"createTask", "recordInfo", "upload", "credit"})
HOLD_ENDPOINTS = ENDPOINTS | {"result"}
FINAL_STATES = frozenset({"success", "fail"})
CREATE_PATH = "/api/v1/jobs/createTask"
UNAUTHORIZED_MSG = "You do not have access permissions"
NOT_ACCESSIBLE_MSG = "image url not accessible"
DEFAULT_FAIL_CODE = "500"
DEFAULT_FAIL_MSG = "content moderation failed"
_PATH_ENDPOINTS = {
    CREATE_PATH: "createTask",
    "/api/v1/jobs/recordInfo": "recordInfo",
    "/api/v1/chat/credit": "credit",
    "/api/file-stream-upload": "upload",
    "/api/file-base64-upload": "upload",
}


def _mp4_stub() -> bytes:
    """Return a tiny byte string that starts like an MP4 file (ftyp box, then an empty mdat)."""
    ftyp = (24).to_bytes(4, "big") + b"ftypmp42" + bytes(4) + b"mp42isom"
    mdat_size = 4096 - len(ftyp)
    return ftyp + mdat_size.to_bytes(4, "big") + b"mdat" + bytes(mdat_size - 8)


DEFAULT_VIDEO = _mp4_stub()
_CHUNK = 64 * 1024


@dataclass
class KieRequest:
    """One HTTP request the fake received, recorded before it was answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None


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


_MODELS: dict[str, _ModelSpec] = {
    "kling-2.6/image-to-video": _ModelSpec(
        prompt_max=1000,
        image_list=True,
        sound=True,
        duration_required=True,
        negative_max=None,
        cfg_scale=False,
        tail_image=False,
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
    ),
}


@dataclass
class _Failure:
    code: int
    msg: str
    http_status: int


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


def _ms(t: float | None) -> int | None:
    return None if t is None else int(t * 1000)


def _parse_json(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


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


def _envelope(code: int, msg: str, data: Any = None, *, status: int = 200) -> JSONResponse:
    return JSONResponse({"code": code, "msg": msg, "data": data}, status_code=status)


def _upload_envelope(code: int, msg: str, data: Any = None, *, status: int = 200) -> JSONResponse:
    body = {"success": code == 200, "code": code, "msg": msg, "data": data}
    return JSONResponse(body, status_code=status)


# ---- holds and delays (the Telegram and Kling fakes use these too) ---------------------------

Outcome = Literal["go", "gone", "closed"]
# Nothing signals uvicorn's graceful shutdown to a waiting request, so held ones look this often.
_TICK = 0.02


class Hold:
    """Requests to one endpoint that a fake holds until ``release()``; see ``FakeKie.hold``.

    ``arrived`` is set when the first request starts being held (tests may clear it);
    ``count`` is how many requests were held in total, ``waiting`` how many are held right now.
    """

    def __init__(self, endpoint: str, *, after: bool, times: int | None) -> None:
        self.endpoint = endpoint
        self.after = after
        self.arrived = asyncio.Event()
        self.count = 0
        self.waiting = 0
        self._left = times
        self._released = asyncio.Event()
        self._held_one = asyncio.Event()

    @property
    def released(self) -> bool:
        """Whether ``release()`` was called."""
        return self._released.is_set()

    @property
    def active(self) -> bool:
        """Whether this hold will still take a new request."""
        return not self.released and self._left != 0

    def release(self) -> None:
        """Let every held request, and every later one, continue normally."""
        self._released.set()

    async def wait(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait until `count` requests in total have been held."""
        try:
            async with asyncio.timeout(timeout):
                while self.count < count:
                    await self._held_one.wait()
        except TimeoutError:
            raise AssertionError(
                f"{self.count} of {count} {self.endpoint} request(s) held after {timeout}s"
            ) from None

    def claim(self) -> bool:
        """Take one arriving request if this hold is still active."""
        if not self.active:
            return False
        if self._left is not None:
            self._left -= 1
        return True

    async def pause(self, receive: Receive, closed: Callable[[], bool]) -> Outcome:
        """Hold one request until release, its client leaving, or the server closing."""
        self.count += 1
        self.waiting += 1
        self.arrived.set()
        # Swapped, so that waiters woken now don't mistake a later request for this one.
        woken, self._held_one = self._held_one, asyncio.Event()
        woken.set()
        try:
            return await _wait(receive, closed, self._released, math.inf)
        finally:
            self.waiting -= 1


@dataclass
class _Delay:
    seconds: float
    left: int | None

    def claim(self) -> float:
        if self.left == 0:
            return 0.0
        if self.left is not None:
            self.left -= 1
        return self.seconds


@dataclass(frozen=True)
class Plan:
    """What the holds and delays set on a fake do to one request."""

    before: Hold | None = None
    after: Hold | None = None
    seconds: float = 0.0


class Gates:
    """The holds and delays set on one fake, and how they make its requests wait."""

    def __init__(self, endpoints: frozenset[str] | None) -> None:
        self.closed = False
        self._endpoints = endpoints
        self._holds: list[Hold] = []
        self._delays: dict[str, _Delay] = {}

    def hold(self, endpoint: str, *, after: bool, times: int | None) -> Hold:
        """Register a hold on `endpoint`; older active holds take requests first."""
        self._check(endpoint, times)
        hold = Hold(endpoint, after=after, times=times)
        self._holds.append(hold)
        return hold

    def delay(self, endpoint: str, seconds: float, times: int | None) -> None:
        """Set (or, with 0 s, clear) the delay of `endpoint`, replacing any earlier one."""
        self._check(endpoint, times)
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        if seconds == 0:
            self._delays.pop(endpoint, None)
        else:
            self._delays[endpoint] = _Delay(seconds, times)

    def take(self, endpoint: str) -> Plan:
        """Claim the hold (at most one) and the delay that apply to a request arriving now."""
        self._holds = [hold for hold in self._holds if hold.active]
        hold = next((h for h in self._holds if h.endpoint == endpoint and h.claim()), None)
        delay = self._delays.get(endpoint)
        seconds = 0.0 if delay is None else delay.claim()
        if hold is None:
            return Plan(seconds=seconds)
        return (
            Plan(after=hold, seconds=seconds) if hold.after else Plan(before=hold, seconds=seconds)
        )

    async def before_work(self, receive: Receive, plan: Plan) -> Outcome:
        """Apply the plan's hold-before, if any."""
        if plan.before is None:
            return "go"
        return await plan.before.pause(receive, self._is_closed)

    async def before_answer(self, receive: Receive, plan: Plan) -> Outcome:
        """Apply the plan's delay, then its hold-after."""
        outcome: Outcome = "go"
        if plan.seconds > 0:
            outcome = await _wait(receive, self._is_closed, None, plan.seconds)
        if outcome == "go" and plan.after is not None:
            outcome = await plan.after.pause(receive, self._is_closed)
        return outcome

    async def run(
        self,
        endpoint: str,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        replay: Receive,
        send: Send,
        unavailable: Callable[[], Response],
    ) -> None:
        """Serve one request with `app`, holding or delaying it as set for `endpoint`.

        `receive` is the server's own (watched for the client leaving), `replay` the app's.
        """
        plan = self.take(endpoint)
        outcome = await self.before_work(receive, plan)
        if outcome == "go" and plan.after is None and plan.seconds <= 0:
            await app(scope, replay, send)
            return
        answer: list[AsgiMessage] = []
        if outcome == "go":

            async def keep(message: AsgiMessage) -> None:
                answer.append(message)

            await app(scope, replay, keep)
            outcome = await self.before_answer(receive, plan)
        # A client that left gets nothing: uvicorn drops the request quietly.
        if outcome == "closed":
            await unavailable()(scope, replay, send)
        elif outcome == "go":
            for message in answer:
                await send(message)

    def _is_closed(self) -> bool:
        return self.closed

    def _check(self, endpoint: str, times: int | None) -> None:
        if self._endpoints is not None and endpoint not in self._endpoints:
            raise ValueError(f"endpoint must be one of {sorted(self._endpoints)}, not {endpoint!r}")
        if times is not None and times < 1:
            raise ValueError("times must be None or at least 1")


async def _wait(
    receive: Receive, closed: Callable[[], bool], release: asyncio.Event | None, seconds: float
) -> Outcome:
    """Wait for `release` or `seconds`, whichever first; stop early if the client or server go."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    keep_alive = _keep_alive(receive)
    gone = asyncio.ensure_future(_until_disconnect(receive))
    watched: list[asyncio.Future[Any]] = [gone]
    if release is not None:
        watched.append(asyncio.ensure_future(release.wait()))
    try:
        while True:
            if gone.done():
                return "gone"
            # uvicorn's graceful shutdown only flips keep_alive on the requests it waits for.
            if closed() or (keep_alive and not _keep_alive(receive)):
                return "closed"
            left = deadline - loop.time()
            if left <= 0 or (release is not None and release.is_set()):
                return "go"
            await asyncio.wait(
                watched, timeout=min(_TICK, left), return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        for task in watched:
            task.cancel()
        await asyncio.gather(*watched, return_exceptions=True)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _keep_alive(receive: Receive) -> bool:
    cycle = getattr(receive, "__self__", None)
    return bool(getattr(cycle, "keep_alive", True))


class _Recorder:
    """ASGI middleware that records each request, body included, then lets the fake's gates in."""

    def __init__(self, app: ASGIApp, fake: FakeKie) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        self.fake.requests.append(
            KieRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope["query_string"].decode("latin-1"), True)),
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                },
                body=body,
                json=_parse_json(body),
            )
        )
        replayed = False

        async def replay() -> AsgiMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        endpoint = _endpoint_of(scope["path"])
        if endpoint is None:
            await self.app(scope, replay, send)
            return
        await self.fake._gates.run(endpoint, self.app, scope, receive, replay, send, _unavailable)


def _endpoint_of(path: str) -> str | None:
    if path.startswith("/results/"):
        return "result"
    return _PATH_ENDPOINTS.get(path)


def _unavailable() -> Response:
    return _envelope(503, "Service Unavailable", status=503)


class FakeKie:
    """A kie.ai stand-in with knobs: timing, outcome, injected errors and callbacks."""

    def __init__(
        self,
        api_key: str = "kie-test-key",
        *,
        hmac_key: str | None = None,
        video: bytes | None = None,
    ) -> None:
        self.api_key = api_key
        self.hmac_key = hmac_key
        self.requests: list[KieRequest] = []
        self.tasks: dict[str, KieTask] = {}
        self.uploads: dict[str, bytes] = {}
        self.callbacks_sent: list[tuple[str, int]] = []
        self.finish_after: float | None = None
        self.outcome: str = "success"
        self.callback_times: int = 1
        self.callback_delay: float = 0.0
        self.video: bytes = DEFAULT_VIDEO if video is None else video
        self.credits: int = 1234
        self._failures: dict[str, deque[_Failure]] = {name: deque() for name in ENDPOINTS}
        self._mimes: dict[str, str] = {}
        self._url_files: dict[str, str] = {}
        self._bases: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._counter = itertools.count(1)
        self._client: httpx.AsyncClient | None = None
        self._gates = Gates(HOLD_ENDPOINTS)
        self.app = Starlette(
            routes=[
                Route(CREATE_PATH, self._create_task, methods=["POST"]),
                Route("/api/v1/jobs/recordInfo", self._record_info, methods=["GET"]),
                Route("/api/v1/chat/credit", self._credit, methods=["GET"]),
                Route("/api/file-stream-upload", self._upload_stream, methods=["POST"]),
                Route("/api/file-base64-upload", self._upload_base64, methods=["POST"]),
                Route("/files/{path:path}", self._serve_file, methods=["GET"]),
                Route("/results/{task_id}.mp4", self._serve_result, methods=["GET"]),
            ],
            middleware=[Middleware(_Recorder, fake=self)],
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- knobs and inspection -------------------------------------------------------------

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
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {sorted(ENDPOINTS)}, not {endpoint!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._failures[endpoint].extend(_Failure(code, msg, http_status) for _ in range(times))

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
        if task.state not in FINAL_STATES:
            self._cancel_timer(task_id)
        self._end(task, success=success, fail_code=fail_code, fail_msg=fail_msg)
        await self._deliver(task)

    def hold(self, endpoint: str, *, after: bool = False, times: int | None = None) -> Hold:
        """Hold the next `times` requests to `endpoint` (all when None) before or after the work."""
        return self._gates.hold(endpoint, after=after, times=times)

    def delay(self, endpoint: str, seconds: float, times: int | None = None) -> None:
        """Answer the next `times` requests to `endpoint` (all when None) `seconds` late."""
        self._gates.delay(endpoint, seconds, times)

    async def send_callback(
        self, task_id: str, *, state: str | None = None, times: int = 1
    ) -> list[int]:
        """POST the task's callback `times` times as if it were in `state`; return our answers.

        The task itself is left as it is; 0 stands for a callback that could not be delivered.
        """
        task = self.tasks[task_id]
        if task.callback_url is None:
            raise ValueError(f"task {task_id} has no callBackUrl")
        if times < 1:
            raise ValueError("times must be at least 1")
        return await self._post_callbacks(self._as_if(task, state), times, pause=0.0)

    def creates(self) -> list[KieRequest]:
        """Return the createTask requests received, in order."""
        return [r for r in self.requests if r.method == "POST" and r.path == CREATE_PATH]

    def polls(self, task_id: str | None = None) -> int:
        """Return how many recordInfo calls named `task_id` (all tasks when None)."""
        if task_id is not None:
            return self.tasks[task_id].polls
        return sum(task.polls for task in self.tasks.values())

    async def aclose(self) -> None:
        """Cancel finish timers, answer held requests 503 and close the callback client.

        Safe to call twice.
        """
        self._gates.closed = True
        timers = list(self._timers.values())
        self._timers.clear()
        for timer in timers:
            timer.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    # ---- jobs API -------------------------------------------------------------------------

    async def _create_task(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        if (failure := self._take_failure("createTask")) is not None:
            return _envelope(failure.code, failure.msg, status=failure.http_status)
        try:
            body, model, callback_url, input_ = self._validate_create(
                _parse_json(await request.body())
            )
        except _RejectedError as invalid:
            return _envelope(invalid.code, invalid.msg)
        task_id = f"task_kling_{next(self._counter):04d}{secrets.token_hex(6)}"
        now = time.time()
        self.tasks[task_id] = KieTask(
            task_id=task_id,
            model=model,
            input=input_,
            callback_url=callback_url,
            state="waiting",
            created=now,
            param=body,
            updated=now,
        )
        self._bases[task_id] = str(request.base_url).rstrip("/")
        if self.finish_after is not None:
            delay = max(0.0, self.finish_after)
            self._deadlines[task_id] = time.monotonic() + delay
            timer = asyncio.create_task(self._finish_later(task_id, delay))
            self._timers[task_id] = timer
            timer.add_done_callback(lambda done: self._forget_timer(task_id, done))
        return _envelope(200, "success", {"taskId": task_id})

    async def _record_info(self, request: Request) -> Response:
        if not self._authorized(request):
            return _envelope(401, UNAUTHORIZED_MSG, status=401)
        task_id = request.query_params.get("taskId", "")
        task = self.tasks.get(task_id)
        if task is not None:
            task.polls += 1
        if (failure := self._take_failure("recordInfo")) is not None:
            return _envelope(failure.code, failure.msg, status=failure.http_status)
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
            return _envelope(failure.code, failure.msg, status=failure.http_status)
        return _envelope(200, "success", self.credits)

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
        body = _parse_json(await request.body())
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
            return _upload_envelope(failure.code, failure.msg, status=failure.http_status)
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
            return Response("Not Found", status_code=404, media_type="text/plain")
        return Response(data, media_type=self._mimes.get(file_path, "application/octet-stream"))

    async def _serve_result(self, request: Request) -> Response:
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or task.state != "success":
            return Response("Not Found", status_code=404, media_type="text/plain")
        video = self.video

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(video), _CHUNK):
                yield video[start : start + _CHUNK]

        return StreamingResponse(
            chunks(), media_type="video/mp4", headers={"content-length": str(len(video))}
        )

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
            if len(urls) != 1:
                raise _RejectedError("input.image_urls must contain exactly one url")
            self._check_image(urls[0])
        else:
            url = input_.get("image_url")
            if not isinstance(url, str) or not url:
                raise _RejectedError("input.image_url is required")
            self._check_image(url)
        if spec.sound and not isinstance(input_.get("sound"), bool):
            raise _RejectedError("input.sound is required and must be a boolean")
        duration = input_.get("duration")
        if duration is None:
            if spec.duration_required:
                raise _RejectedError("input.duration is required")
        elif not isinstance(duration, str) or duration not in ("5", "10"):
            raise _RejectedError('input.duration must be "5" or "10"')
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
            self._check_image(tail)

    def _check_image(self, url: Any) -> None:
        file_path = self._url_files.get(url) if isinstance(url, str) else None
        if file_path is None or file_path not in self.uploads:
            raise _RejectedError(NOT_ACCESSIBLE_MSG)

    def _advance(self, task: KieTask) -> None:
        if task.state in FINAL_STATES:
            return
        deadline = self._deadlines.get(task.task_id)
        if deadline is not None and time.monotonic() >= deadline:
            self._end(task, success=self.outcome == "success")
            return
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
        cost = None if task.completed is None else int((task.completed - task.created) * 1000)
        return {
            "taskId": task.task_id,
            "model": task.model,
            "state": task.state,
            "param": json.dumps(task.param, ensure_ascii=False, separators=(",", ":")),
            "resultJson": json.dumps(result, separators=(",", ":")) if result else "",
            "failCode": task.fail_code,
            "failMsg": task.fail_msg,
            "costTime": cost,
            "completeTime": _ms(task.completed),
            "createTime": _ms(task.created),
            "updateTime": _ms(task.updated),
        }

    async def _finish_later(self, task_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        task = self.tasks[task_id]
        # recordInfo may already have ended it lazily; the callbacks are still ours to send.
        if task.state not in FINAL_STATES:
            self._end(task, success=self.outcome == "success")
        await self._deliver(task)

    def _forget_timer(self, task_id: str, done: asyncio.Task[None]) -> None:
        if self._timers.get(task_id) is done:
            del self._timers[task_id]

    def _cancel_timer(self, task_id: str) -> None:
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

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

    async def _deliver(self, task: KieTask) -> None:
        if task.callback_url is not None:
            await self._post_callbacks(task, self.callback_times, self.callback_delay)

    async def _post_callbacks(self, task: KieTask, times: int, pause: float) -> list[int]:
        url = task.callback_url
        assert url is not None
        failed = task.state == "fail"
        payload = {
            "code": 501 if failed else 200,
            "msg": (task.fail_msg or "generation failed") if failed else "success",
            "data": self._task_data(task),
        }
        content = json.dumps(payload, ensure_ascii=False).encode()
        statuses: list[int] = []
        for attempt in range(times):
            if attempt and pause > 0:
                await asyncio.sleep(pause)
            headers = {"content-type": "application/json", **self._signature(task.task_id)}
            try:
                response = await self._http().post(url, content=content, headers=headers)
                status = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL):
                status = 0
            self.callbacks_sent.append((url, status))
            statuses.append(status)
        return statuses

    def _signature(self, task_id: str) -> dict[str, str]:
        if self.hmac_key is None:
            return {}
        timestamp = str(int(time.time()))
        digest = hmac.new(
            self.hmac_key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256
        ).digest()
        return {
            "X-Webhook-Timestamp": timestamp,
            "X-Webhook-Signature": base64.b64encode(digest).decode(),
        }

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=15.0, headers={"user-agent": "fake-kie"})
        return self._client

    # ---- helpers --------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.api_key}"

    def _take_failure(self, endpoint: str) -> _Failure | None:
        queue = self._failures[endpoint]
        return queue.popleft() if queue else None
