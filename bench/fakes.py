"""The fakes of `tests/` as the benchmark uses them: spread task times, webhook deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import json
import time
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, ClassVar, Literal

import httpx
from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes import telegram as telegram_fake
from tests.fakes.common import RecordedRequest
from tests.fakes.kie import FakeKie
from tests.fakes.kling import FakeKling

TOKEN = "987654321:AAbenchTokenForLoadRuns_abcdefghijklm"
KIE_KEY = "kie-bench-key-0123456789"
KLING_ACCESS_KEY = "kling-bench-access-key"
# 32 bytes or more: PyJWT warns about shorter HMAC secrets.
KLING_SECRET_KEY = "kling-bench-secret-key-0123456789abcdef"
KLING_I2V = "/v1/videos/image2video"
KIE_RECORD_INFO = "/api/v1/jobs/recordInfo"
KIE_KINDS = {
    "/api/file-stream-upload": "upload",
    "/api/file-base64-upload": "upload",
    "/api/v1/jobs/createTask": "create",
    KIE_RECORD_INFO: "poll",
}
GOLDEN = 0.6180339887498949
# Telegram delivers webhook updates over at most this many connections by default.
WEBHOOK_CONNECTIONS = 40


def memoize_thumbnails() -> None:
    """Make the fake Telegram's photo thumbnails once per image (15 ms each otherwise).

    Every simulated user sends the same photo; without this, writing 1,000 photos would
    keep the benchmark's own event loop busy for 15 s.
    """
    make = getattr(telegram_fake, "_thumbnail", None)
    if make is not None and not hasattr(make, "cache_info"):
        telegram_fake._thumbnail = functools.lru_cache(maxsize=8)(make)


def photo(width: int = 1280, height: int = 720) -> bytes:
    """A real JPEG the size Telegram makes of a phone photo."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


Shape = Literal["even", "normal"]


@dataclass(frozen=True)
class TaskTimes:
    """How long the fake provider's tasks take: spread evenly over [low, high], or bell-shaped.

    "normal" is a normal distribution centred on the middle with σ a sixth of the range, so
    the range is ±3σ, clipped to it: 42–78 s is 60 s ± 30 % with σ = 6 s (10 %). Either way
    the times are drawn deterministically, in creation order, from a golden-ratio sequence of
    fractions, so any run of consecutive tasks covers the distribution.
    """

    low: float
    high: float
    shape: Shape = "even"

    def at(self, fraction: float) -> float:
        """The task time at this fraction (0–1) of the distribution."""
        if self.shape == "even" or self.high <= self.low:
            return self.low + (self.high - self.low) * fraction
        middle, sigma = (self.low + self.high) / 2, (self.high - self.low) / 6
        inside = min(max(fraction, 1e-9), 1 - 1e-9)
        return min(max(NormalDist(middle, sigma).inv_cdf(inside), self.low), self.high)

    def fraction(self, n: int) -> float:
        """The n-th fraction (from 0) of the golden-ratio sequence this shape draws from."""
        # The even spread starts at `low`; the normal one starts past 0 (whose time is -∞).
        return ((n + (0 if self.shape == "even" else 1)) * GOLDEN) % 1.0

    def scaled(self, time_scale: float) -> TaskTimes:
        """The same distribution played `time_scale` times faster."""
        return TaskTimes(self.low / time_scale, self.high / time_scale, self.shape)

    def describe(self) -> str:
        """In words, e.g. "60 s ± 30 %, normal (σ 6 s), clipped to 42–78 s"."""
        if self.low == self.high:
            return f"{self.low:g} s"
        if self.shape == "even":
            return f"{self.low:g}–{self.high:g} s, spread evenly"
        middle, sigma = (self.low + self.high) / 2, (self.high - self.low) / 6
        return (
            f"{middle:g} s ± {(self.high - middle) / middle * 100:.0f} %, normal "
            f"(σ {sigma:g} s), clipped to {self.low:g}–{self.high:g} s"
        )


class Spread:
    """Hands out task times from a TaskTimes, in creation order."""

    def __init__(self, times: TaskTimes) -> None:
        self.times = times
        self._order = itertools.count()

    def next_duration(self) -> float:
        """The next task's time."""
        return self.times.at(self.times.fraction(next(self._order)))


def _answer(response: Response) -> Any:
    """The JSON a fake answered (None if it is not JSON)."""
    try:
        return json.loads(bytes(response.body))
    except ValueError:
        return None


class BenchKie(FakeKie):
    """FakeKie whose tasks take times from a TaskTimes, in creation order.

    It also notes when the bot learned that a task was done: the arrival (time.time()) of the
    first status request answered with success, by task id; and the arrival of every status
    request, refused or not.
    """

    backend: ClassVar[str] = "kie"

    def __init__(self, times: TaskTimes, time_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spread = Spread(times)
        self.seen_done: dict[str, float] = {}
        self.status_times: list[float] = []
        # kie's status limit (10 recordInfo per second and key), where the fake has one:
        # the same count in a window `time_scale` times shorter.
        limit = getattr(self, "status_limit", None)
        if limit is not None and time_scale != 1:
            setattr(self, "status_limit", type(limit)(limit.limit, limit.seconds / time_scale))  # noqa: B010

    @property
    def refused(self) -> int:
        """Status queries the fake refused for going over its limit."""
        return int(getattr(getattr(self, "status_limit", None), "refused", 0))

    def next_duration(self) -> float:
        """The next task's time."""
        return self.spread.next_duration()

    async def _create_task(self, request: Request) -> Response:
        # `finish_after` is read when a task is created (see FakeKie), so set it just before.
        self.finish_after = self.next_duration()
        return await super()._create_task(request)

    async def _record_info(self, request: Request) -> Response:
        arrived = time.time()
        self.status_times.append(arrived)
        response = await super()._record_info(request)
        body = _answer(response)
        data = body.get("data") if isinstance(body, dict) and body.get("code") == 200 else None
        if isinstance(data, dict) and data.get("state") == "success":
            self.seen_done.setdefault(str(data.get("taskId")), arrived)
        return response

    @staticmethod
    def kind(request: RecordedRequest) -> str | None:
        """What a request was: upload, create, poll (a status query) or download."""
        if request.path.startswith("/results/"):
            return "download"
        return KIE_KINDS.get(request.path)

    @staticmethod
    def polled_task(request: RecordedRequest) -> str | None:
        """The task a per-task status query asked about."""
        return request.query.get("taskId") if request.path == KIE_RECORD_INFO else None


class BenchKling(FakeKling):
    """The official Kling API's fake whose tasks take times from a TaskTimes, in creation order.

    Like BenchKie it notes the first status answer that said "succeed", by task id, whether a
    per-task query (`GET /v1/videos/image2video/{id}`) or a list call (`GET
    /v1/videos/image2video?pageNum=…`) gave it; and the arrival of every such request.
    """

    backend: ClassVar[str] = "kling"

    def __init__(self, times: TaskTimes, **kwargs: Any) -> None:
        super().__init__(access_key=KLING_ACCESS_KEY, secret_key=KLING_SECRET_KEY, **kwargs)
        self.spread = Spread(times)
        self.seen_done: dict[str, float] = {}
        self.status_times: list[float] = []

    @property
    def refused(self) -> int:
        """Status queries the fake refused for going over a limit (the Kling fake has none)."""
        return 0

    def next_duration(self) -> float:
        """The next task's time."""
        return self.spread.next_duration()

    async def _create(self, kind: str, request: Request) -> Response:
        self.finish_after = self.next_duration()
        return await super()._create(kind, request)

    async def _query(self, kind: str, request: Request) -> Response:
        arrived = time.time()
        self.status_times.append(arrived)
        response = await super()._query(kind, request)
        self._note_done(_answer(response), arrived)
        return response

    async def _list(self, kind: str, request: Request) -> Response:
        arrived = time.time()
        self.status_times.append(arrived)
        response = await super()._list(kind, request)
        self._note_done(_answer(response), arrived)
        return response

    def _note_done(self, body: Any, arrived: float) -> None:
        if not isinstance(body, dict) or body.get("code") != 0:
            return
        data = body.get("data")
        for task in data if isinstance(data, list) else [data]:
            if isinstance(task, dict) and task.get("task_status") == "succeed":
                self.seen_done.setdefault(str(task.get("task_id")), arrived)

    @staticmethod
    def kind(request: RecordedRequest) -> str | None:
        """What a request was: create, poll (a per-task status query), list, lookup, download."""
        path = request.path
        if path.startswith("/results/"):
            return "download"
        if path == KLING_I2V:
            if request.method == "POST":
                return "create"
            return "lookup" if "external_task_id" in request.query else "list"
        if path.startswith(KLING_I2V + "/"):
            return "poll"
        return None

    @staticmethod
    def polled_task(request: RecordedRequest) -> str | None:
        """The task a per-task status query asked about."""
        if request.method == "GET" and request.path.startswith(KLING_I2V + "/"):
            return request.path[len(KLING_I2V) + 1 :]
        return None


BenchProvider = BenchKie | BenchKling


class WebhookPusher:
    """Delivers updates to the bot's webhook as Telegram does: POSTs with the secret header.

    With several URLs (replicas behind no proxy) each delivery goes to the next one in turn.
    An answer other than 200, or no answer, is sent again (to the next URL) after
    `retry_delay`, as Telegram redelivers what was not acknowledged; after `attempts` tries the
    update counts as refused (lost).
    """

    def __init__(
        self,
        url: str | list[str],
        secret: str,
        connections: int = WEBHOOK_CONNECTIONS,
        retry_delay: float = 0.1,
        attempts: int = 100,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        self.posted = 0
        self.refused = 0
        self.retried = 0
        self.retry_delay = retry_delay
        self.attempts = attempts
        self._next = itertools.cycle(range(len(self.urls)))
        self._headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        self._client = httpx.AsyncClient(
            timeout=60.0, limits=httpx.Limits(max_connections=connections)
        )
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._workers = [asyncio.create_task(self._work()) for _ in range(connections)]

    @property
    def url(self) -> str:
        """The first URL."""
        return self.urls[0]

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue one update (`kind` is "message" or "callback_query")."""
        self._queue.put_nowait({"update_id": next(self._ids), kind: payload})

    async def _work(self) -> None:
        while True:
            update = await self._queue.get()
            try:
                await self._deliver(update)
            finally:
                self._queue.task_done()

    async def _deliver(self, update: dict[str, Any]) -> None:
        for attempt in range(self.attempts):
            if attempt:
                self.retried += 1
                await asyncio.sleep(self.retry_delay)
            url = self.urls[next(self._next)]
            try:
                response = await self._client.post(url, json=update, headers=self._headers)
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                self.posted += 1
                return
        self.refused += 1

    async def aclose(self) -> None:
        """Stop delivering and close the connections."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self._client.aclose()
