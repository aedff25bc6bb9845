"""The fakes of `tests/` as the benchmark uses them: spread task times, webhook deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import itertools
import time
from typing import Any

import httpx
from PIL import Image
from starlette.requests import Request
from starlette.responses import Response

from tests.fakes import telegram as telegram_fake
from tests.fakes.kie import FakeKie

TOKEN = "987654321:AAbenchTokenForLoadRuns_abcdefghijklm"
KIE_KEY = "kie-bench-key-0123456789"
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


class BenchKie(FakeKie):
    """FakeKie whose tasks take times spread evenly over [low, high] seconds, in creation order.

    It also notes when the bot learned that a task was done: the arrival (time.time()) of the
    first status request answered with success, by task id.
    """

    def __init__(self, low: float, high: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._low, self._high = low, high
        self._order = itertools.count()
        self.seen_done: dict[str, float] = {}

    def next_duration(self) -> float:
        """The next task's time: a golden-ratio sequence, so any prefix covers the range."""
        fraction = (next(self._order) * GOLDEN) % 1.0
        return self._low + (self._high - self._low) * fraction

    async def _create_task(self, request: Request) -> Response:
        # `finish_after` is read when a task is created (see FakeKie), so set it just before.
        self.finish_after = self.next_duration()
        return await super()._create_task(request)

    async def _record_info(self, request: Request) -> Response:
        arrived = time.time()
        response = await super()._record_info(request)
        task_id = request.query_params.get("taskId", "")
        task = self.tasks.get(task_id)
        if task is not None and task.state == "success":
            self.seen_done.setdefault(task_id, arrived)
        return response


class WebhookPusher:
    """Delivers updates to the bot's webhook as Telegram does: POSTs with the secret header."""

    def __init__(self, url: str, secret: str, connections: int = WEBHOOK_CONNECTIONS) -> None:
        self.url = url
        self.posted = 0
        self.refused = 0
        self._headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        self._client = httpx.AsyncClient(
            timeout=60.0, limits=httpx.Limits(max_connections=connections)
        )
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._workers = [asyncio.create_task(self._work()) for _ in range(connections)]

    def push(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue one update (`kind` is "message" or "callback_query")."""
        self._queue.put_nowait({"update_id": next(self._ids), kind: payload})

    async def _work(self) -> None:
        while True:
            update = await self._queue.get()
            try:
                response = await self._client.post(self.url, json=update, headers=self._headers)
                if response.status_code == 200:
                    self.posted += 1
                else:
                    self.refused += 1
            except httpx.HTTPError:
                self.refused += 1
            finally:
                self._queue.task_done()

    async def aclose(self) -> None:
        """Stop delivering and close the connections."""
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self._client.aclose()
