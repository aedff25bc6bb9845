"""Plumbing the loopback fakes share: holds and delays, request log, task timers, callbacks."""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any, ClassVar, Generic, Literal, Protocol, Self, TypeVar, overload
from urllib.parse import parse_qsl

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

__all__ = [
    "BREAKAGES",
    "DEFAULT_VIDEO",
    "Breakage",
    "Failure",
    "Failures",
    "Gates",
    "Hold",
    "Outcome",
    "Plan",
    "ProviderFake",
    "RecordedRequest",
    "Recorder",
    "SlidingWindow",
    "ms",
    "not_found",
    "parse_json",
]


def _mp4_stub() -> bytes:
    """Return a tiny byte string that starts like an MP4 file (ftyp box, then an empty mdat)."""
    ftyp = (24).to_bytes(4, "big") + b"ftypmp42" + bytes(4) + b"mp42isom"
    mdat_size = 4096 - len(ftyp)
    return ftyp + mdat_size.to_bytes(4, "big") + b"mdat" + bytes(mdat_size - 8)


DEFAULT_VIDEO = _mp4_stub()
_CHUNK = 64 * 1024


@dataclass
class RecordedRequest:
    """One HTTP request the fake received, recorded before it was answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any | None
    # The caller's (host, port): which of several bot processes sent it.
    client: tuple[str, int] | None = None


@dataclass
class Failure:
    """An answer ``fail_next`` injected in place of an endpoint's own."""

    code: int
    message: str
    http_status: int


class Failures:
    """The answers injected by ``fail_next``, queued per endpoint."""

    def __init__(self, endpoints: frozenset[str]) -> None:
        self._queues: dict[str, deque[Failure]] = {name: deque() for name in endpoints}

    def add(self, endpoint: str, failure: Failure, times: int) -> None:
        """Queue `failure` for the next `times` calls of `endpoint`."""
        if endpoint not in self._queues:
            raise ValueError(f"endpoint must be one of {sorted(self._queues)}, not {endpoint!r}")
        if times < 1:
            raise ValueError("times must be at least 1")
        self._queues[endpoint].extend(failure for _ in range(times))

    def take(self, endpoint: str) -> Failure | None:
        """Return the next failure queued for `endpoint`, if any."""
        queue = self._queues[endpoint]
        return queue.popleft() if queue else None


@overload
def ms(t: float) -> int: ...
@overload
def ms(t: None) -> None: ...
def ms(t: float | None) -> int | None:
    """Return a time in seconds as whole milliseconds (None stays None)."""
    return None if t is None else int(t * 1000)


def parse_json(body: bytes) -> Any | None:
    """Return the body as JSON, or None when it is empty or not JSON."""
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def not_found() -> Response:
    """Return the plain 404 the fakes' file and result hosts answer with."""
    return Response("Not Found", status_code=404, media_type="text/plain")


@cache
def _tls_context() -> ssl.SSLContext:
    """Return one verifying TLS context for all fakes: building one costs ~30 ms."""
    return ssl.create_default_context()


class SlidingWindow:
    """Admits at most `limit` requests per key within any `seconds`-long span (a sliding log)."""

    def __init__(self, limit: int, seconds: float) -> None:
        if limit < 1 or seconds <= 0:
            raise ValueError("limit must be at least 1 and seconds above 0")
        self.limit = limit
        self.seconds = seconds
        self.refused = 0
        self._admitted: dict[str, deque[float]] = {}

    def admit(self, key: str) -> bool:
        """Count a request under `key` now; False (and not counted) when the window is full."""
        now = time.monotonic()
        log = self._admitted.setdefault(key, deque())
        while log and log[0] <= now - self.seconds:
            log.popleft()
        if len(log) >= self.limit:
            self.refused += 1
            return False
        log.append(now)
        return True


# ---- holds and delays (the Telegram fake uses these too) -----------------------------------

Outcome = Literal["go", "gone", "closed"]
# Nothing signals uvicorn's graceful shutdown to a waiting request, so held ones look this often.
_TICK = 0.02


class Hold:
    """Requests to one endpoint that a fake holds until ``release()``; see a fake's ``hold()``.

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


# How a provider fake can spoil an answer after doing the work (the task exists, and is paid).
Breakage = Literal["not_json", "bad_gzip", "html_502", "html_524", "reset", "silence"]
BREAKAGES: tuple[Breakage, ...] = (
    "not_json",
    "bad_gzip",
    "html_502",
    "html_524",
    "reset",
    "silence",
)

_BROKEN_BODIES: dict[str, tuple[int, str, bytes]] = {
    # A 200 cut off mid-body, as a proxy that drops the connection's end may pass it on.
    "not_json": (200, "application/json", b'{"code": 200, "msg": "succ'),
    "html_502": (
        502,
        "text/html",
        b"<html><head><title>502 Bad Gateway</title></head>"
        b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>"
        b"</html>",
    ),
    "html_524": (
        524,
        "text/html; charset=UTF-8",
        b"<!DOCTYPE html><html><head><title>A timeout occurred | Cloudflare</title></head>"
        b"<body><h1>Error 524</h1><p>A timeout occurred</p></body></html>",
    ),
}


@dataclass(frozen=True)
class Plan:
    """What the holds, delays and breakages set on a fake do to one request."""

    before: Hold | None = None
    after: Hold | None = None
    seconds: float = 0.0
    broken: Breakage | None = None


class Gates:
    """The holds and delays set on one fake, and how they make its requests wait."""

    def __init__(self, endpoints: frozenset[str] | None) -> None:
        self.closed = False
        self._endpoints = endpoints
        self._holds: list[Hold] = []
        self._delays: dict[str, _Delay] = {}
        self._breaks: dict[str, deque[Breakage]] = {}

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

    def spoil(self, endpoint: str, how: Breakage, times: int) -> None:
        """Do the work of the next `times` requests to `endpoint`, then answer them `how`."""
        self._check(endpoint, times)
        if how not in BREAKAGES:
            raise ValueError(f"how must be one of {BREAKAGES}, not {how!r}")
        self._breaks.setdefault(endpoint, deque()).extend(how for _ in range(times))

    def take(self, endpoint: str) -> Plan:
        """Claim the hold (at most one), the delay and the breakage for a request arriving now."""
        self._holds = [hold for hold in self._holds if hold.active]
        hold = next((h for h in self._holds if h.endpoint == endpoint and h.claim()), None)
        delay = self._delays.get(endpoint)
        seconds = 0.0 if delay is None else delay.claim()
        breaks = self._breaks.get(endpoint)
        broken = breaks.popleft() if breaks else None
        if hold is None:
            return Plan(seconds=seconds, broken=broken)
        if hold.after:
            return Plan(after=hold, seconds=seconds, broken=broken)
        return Plan(before=hold, seconds=seconds, broken=broken)

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
        if outcome == "go" and plan.after is None and plan.seconds <= 0 and plan.broken is None:
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
        elif outcome == "go" and plan.broken is not None:
            await _spoiled(plan.broken, receive, self._is_closed, scope, replay, send)
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


async def _spoiled(
    how: Breakage,
    receive: Receive,
    closed: Callable[[], bool],
    scope: Scope,
    replay: Receive,
    send: Send,
) -> None:
    """Answer a request whose work is done `how`: a broken body, an error page, or nothing."""
    if how == "silence":
        # No answer at all until the client gives up (its read timeout) or the server stops.
        await _wait(receive, closed, None, math.inf)
        return
    if how == "reset":
        cycle = getattr(receive, "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("this server does not expose the connection to reset")
        transport.abort()  # the connection drops before a single byte of the answer
        return
    if how == "bad_gzip":
        # A 200 whose body says gzip but is not: the client cannot even read it.
        headers = {"content-encoding": "gzip"}
        garbage = Response(b"\x00not gzip at all", media_type="application/json", headers=headers)
        await garbage(scope, replay, send)
        return
    status, media_type, body = _BROKEN_BODIES[how]
    await Response(body, status_code=status, media_type=media_type)(scope, replay, send)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _client(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    return None if client is None else (str(client[0]), int(client[1]))


def _keep_alive(receive: Receive) -> bool:
    cycle = getattr(receive, "__self__", None)
    return bool(getattr(cycle, "keep_alive", True))


# ---- the provider fakes' common part -------------------------------------------------------


class FakeTask(Protocol):
    """What the shared plumbing needs of a provider fake's task."""

    task_id: str
    callback_url: str | None
    polls: int


TaskT = TypeVar("TaskT", bound=FakeTask)


class Recorder:
    """ASGI middleware that records each request, body included, then lets the fake's gates in."""

    def __init__(self, app: ASGIApp, fake: ProviderFake[Any]) -> None:
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
            RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=dict(parse_qsl(scope["query_string"].decode("latin-1"), True)),
                headers={
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
                },
                body=body,
                json=parse_json(body),
                client=_client(scope),
            )
        )
        replayed = False

        async def replay() -> AsgiMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        fake = self.fake
        endpoint = fake._endpoint_of(scope["method"], scope["path"])
        if endpoint is None:
            await self.app(scope, replay, send)
            return
        await fake._gates.run(endpoint, self.app, scope, receive, replay, send, fake._unavailable)


class ProviderFake(ABC, Generic[TaskT]):
    """A video provider's fake: request log, holds and delays, finish timers and callbacks."""

    # How the task's callback URL is spelled in the provider's API, for error messages.
    callback_field: ClassVar[str]

    def __init__(
        self,
        *,
        endpoints: frozenset[str],
        hold_endpoints: frozenset[str],
        user_agent: str,
        video: bytes | None,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.tasks: dict[str, TaskT] = {}
        self.callbacks_sent: list[tuple[str, int]] = []
        self.finish_after: float | None = None
        self.outcome: str = "success"
        self.callback_times: int = 1
        self.callback_delay: float = 0.0
        self.video: bytes = DEFAULT_VIDEO if video is None else video
        self._failures = Failures(endpoints)
        self._bases: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        self._user_agent = user_agent
        self._gates = Gates(hold_endpoints)

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

    def hold(self, endpoint: str, *, after: bool = False, times: int | None = None) -> Hold:
        """Hold the next `times` requests to `endpoint` (all when None) before or after the work."""
        return self._gates.hold(endpoint, after=after, times=times)

    def delay(self, endpoint: str, seconds: float, times: int | None = None) -> None:
        """Answer the next `times` requests to `endpoint` (all when None) `seconds` late."""
        self._gates.delay(endpoint, seconds, times)

    def spoil(self, endpoint: str, how: Breakage, times: int = 1) -> None:
        """Do the work of the next `times` requests to `endpoint`, then spoil the answer.

        `how`: "not_json" (a 200 cut off mid-JSON), "bad_gzip" (a 200 whose gzip body is
        not gzip), "html_502" / "html_524" (a proxy's error
        page), "reset" (the connection dropped before any answer) or "silence" (no answer
        until the client gives up). The provider has accepted the request all the same.
        """
        self._gates.spoil(endpoint, how, times)

    async def send_callback(
        self, task_id: str, *, state: str | None = None, times: int = 1
    ) -> list[int]:
        """POST the task's callback `times` times as if it were in `state`; return our answers.

        The task itself is left as it is; 0 stands for a callback that could not be delivered.
        """
        task = self.tasks[task_id]
        if task.callback_url is None:
            raise ValueError(f"task {task_id} has no {self.callback_field}")
        if times < 1:
            raise ValueError("times must be at least 1")
        return await self._post_callbacks(self._as_if(task, state), times, pause=0.0)

    def polls(self, task_id: str | None = None) -> int:
        """Return how many status queries named `task_id` (all tasks when None)."""
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

    # ---- what each provider says its own way ----------------------------------------------

    @abstractmethod
    def _endpoint_of(self, method: str, path: str) -> str | None:
        """Return the hold/delay endpoint a request belongs to, if any."""

    @abstractmethod
    def _unavailable(self) -> Response:
        """Return the 503 answer for a request still held when the fake closes."""

    @abstractmethod
    def _is_final(self, task: TaskT) -> bool:
        """Return whether the task has ended."""

    @abstractmethod
    def _succeeded(self, task: TaskT) -> bool:
        """Return whether the task ended with a video."""

    @abstractmethod
    def _progress(self, task: TaskT) -> None:
        """Move a running task to the state its poll count calls for."""

    @abstractmethod
    def _end(self, task: TaskT, *, success: bool) -> None:
        """End the task now, with a video or failed."""

    @abstractmethod
    def _as_if(self, task: TaskT, state: str | None) -> TaskT:
        """Return a copy of the task as it would look in `state` (the task itself when None)."""

    @abstractmethod
    def _callback_payload(self, task: TaskT) -> Any:
        """Return the JSON body of the task's callback."""

    def _callback_headers(self, task: TaskT) -> dict[str, str]:
        """Return the extra headers of one callback POST."""
        return {}

    # ---- task lifecycle -------------------------------------------------------------------

    def _add_task(self, task: TaskT, base_url: str) -> None:
        """Store a new task and, when ``finish_after`` is set, arm its finish timer."""
        task_id = task.task_id
        self.tasks[task_id] = task
        self._bases[task_id] = base_url
        if self.finish_after is not None:
            delay = max(0.0, self.finish_after)
            self._deadlines[task_id] = time.monotonic() + delay
            timer = asyncio.create_task(self._finish_later(task_id, delay))
            self._timers[task_id] = timer
            timer.add_done_callback(lambda done: self._forget_timer(task_id, done))

    def _advance(self, task: TaskT) -> None:
        if self._is_final(task):
            return
        deadline = self._deadlines.get(task.task_id)
        if deadline is not None and time.monotonic() >= deadline:
            self._end(task, success=self.outcome == "success")
            return
        self._progress(task)

    async def _finish_later(self, task_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        task = self.tasks[task_id]
        # A poll may already have ended it lazily; the callbacks are still ours to send.
        if not self._is_final(task):
            self._end(task, success=self.outcome == "success")
        await self._deliver(task)

    def _forget_timer(self, task_id: str, done: asyncio.Task[None]) -> None:
        if self._timers.get(task_id) is done:
            del self._timers[task_id]

    def _cancel_timer(self, task_id: str) -> None:
        timer = self._timers.pop(task_id, None)
        if timer is not None:
            timer.cancel()

    # ---- hosting and callbacks ------------------------------------------------------------

    async def _serve_result(self, request: Request) -> Response:
        task = self.tasks.get(request.path_params["task_id"])
        if task is None or not self._succeeded(task):
            return not_found()
        return self._video_response()

    def _video_response(self) -> Response:
        """The result video, streamed."""
        video = self.video

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(video), _CHUNK):
                yield video[start : start + _CHUNK]

        return StreamingResponse(
            chunks(), media_type="video/mp4", headers={"content-length": str(len(video))}
        )

    async def _deliver(self, task: TaskT) -> None:
        if task.callback_url is not None:
            await self._post_callbacks(task, self.callback_times, self.callback_delay)

    async def _post_callbacks(self, task: TaskT, times: int, pause: float) -> list[int]:
        url = task.callback_url
        assert url is not None
        content = json.dumps(self._callback_payload(task), ensure_ascii=False).encode()
        statuses: list[int] = []
        for attempt in range(times):
            if attempt and pause > 0:
                await asyncio.sleep(pause)
            headers = {"content-type": "application/json", **self._callback_headers(task)}
            try:
                response = await self._http().post(url, content=content, headers=headers)
                status = response.status_code
            except (httpx.HTTPError, httpx.InvalidURL):
                status = 0
            self.callbacks_sent.append((url, status))
            statuses.append(status)
        return statuses

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=15.0, headers={"user-agent": self._user_agent}, verify=_tls_context()
            )
        return self._client
