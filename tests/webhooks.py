"""Telegram's webhook delivery and the reverse proxy in front of several replicas, for tests.

In production every replica sets the same webhook, `<PUBLIC_URL>/telegram`; a reverse proxy
(deploy/Caddyfile) sends each request to one replica, and Telegram sends an update again, later,
whenever its webhook did not answer 200. Here the two are one `Deliverer`: it takes the updates
the fake Telegram holds for the webhook, posts each (JSON body, the secret_token setWebhook was
given in X-Telegram-Bot-Api-Secret-Token) to the webhook path of one replica, round-robin, and
sends it again, after a short pause and to the next replica, while the answer is not 200 or
there is none (connection refused, or dropped mid-request). Like a proxy without health checks
it knows a replica died only when a connection to it fails: every replica that has started
stays in the rotation. Like Telegram, it sends a chat's updates one at a time, in order, and
at most `max_connections` at once.

`Proxy` is the rest of the reverse proxy: what providers call back at `PUBLIC_URL` goes to one
replica, the next one when a connection is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.telegram import FakeTelegram

JSON = dict[str, Any]
# (name, base URL) of each replica that listens, in the order they started.
Targets = Callable[[], list[tuple[str, str]]]

# What became of one delivery.
OK = "200"
REFUSED = "refused"  # nothing listens there: the replica is dead
DROPPED = "dropped"  # the connection closed before an answer: the replica died handling it
TIMEOUT = "timeout"
ANSWER_LOST = "answer lost"  # answered 200, but the answer is made not to reach Telegram
# The pause before an update is sent again doubles from FIRST_RETRY up to LAST_RETRY.
FIRST_RETRY = 0.2
LAST_RETRY = 1.0
# How long Telegram waits for a webhook's answer (the bot answers once the update is handled).
ANSWER_TIMEOUT = 60.0


@dataclass
class Attempt:
    """One POST of one update to one replica."""

    update_id: int
    target: str
    started: float
    ended: float = 0.0
    status: int = 0  # the HTTP status; 0 while under way or when there was no answer
    outcome: str = ""  # OK, REFUSED, DROPPED, TIMEOUT, ANSWER_LOST or the status as text
    # For a 200: whether the update was already recorded handled when the answer came.
    recorded: bool | None = None

    @property
    def delivered(self) -> bool:
        """Whether Telegram counts the update delivered."""
        return self.outcome == OK


@dataclass
class Deliverer:
    """Telegram delivering its updates to a webhook behind a round-robin proxy (see module)."""

    telegram: FakeTelegram
    targets: Targets
    # Asked after each 200: is the update recorded handled (the bot answers only then)?
    recorded: Callable[[int], Awaitable[bool]] | None = None
    max_connections: int = 8
    # Off: a failed delivery is not sent again (to show that a test notices).
    redeliver: bool = True
    # The first 200 for each update of these chats never reaches Telegram (as when a proxy
    # timed out or the connection broke on the way back): Telegram sends the update again.
    lossy_chats: set[int] = field(default_factory=set)
    attempts: list[Attempt] = field(default_factory=list)
    _next: int = 0
    _answer_lost: set[int] = field(default_factory=set)
    _queues: dict[int, deque[JSON]] = field(default_factory=dict)
    _lanes: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _runner: asyncio.Task[None] | None = None
    _client: httpx.AsyncClient | None = None
    _slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Deliverer:
        # A new connection for every POST: a pooled one to a dead replica would not say so.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(ANSWER_TIMEOUT, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._slots = asyncio.Semaphore(self.max_connections)
        self._runner = asyncio.create_task(self._run(), name="webhook-deliverer")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop delivering (what is under way is dropped); again does nothing."""
        tasks = [t for t in (self._runner, *self._lanes.values()) if t is not None]
        self._runner, self._lanes = None, {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # ---- what happened -----------------------------------------------------------------------

    def idle(self) -> bool:
        """Whether nothing is being delivered or waits to be (a delivery that broke raises)."""
        for task in (self._runner, *self._lanes.values()):
            if task is not None and task.done() and not task.cancelled():
                task.result()
        return not self.telegram.webhook_waiting() and all(
            lane.done() for lane in self._lanes.values()
        )

    def of(self, update_id: int) -> list[Attempt]:
        """The attempts to deliver one update, in order."""
        return [a for a in self.attempts if a.update_id == update_id]

    def delivered(self, update_id: int) -> Attempt | None:
        """The attempt Telegram counts as the update's delivery, if one was."""
        return next((a for a in self.of(update_id) if a.delivered), None)

    def in_flight(self, update_id: int) -> Attempt | None:
        """The attempt under way for the update, if one is."""
        return next((a for a in self.of(update_id) if not a.ended), None)

    def outcomes(self) -> dict[str, int]:
        """How many attempts ended each way."""
        counts: dict[str, int] = {}
        for attempt in self.attempts:
            if attempt.ended:
                counts[attempt.outcome] = counts.get(attempt.outcome, 0) + 1
        return counts

    # ---- delivering --------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if self.telegram.webhook_url:
                for update in self.telegram.webhook_updates():
                    chat = chat_of(update)
                    self._queues.setdefault(chat, deque()).append(update)
                    lane = self._lanes.get(chat)
                    if lane is None or lane.done():
                        self._lanes[chat] = asyncio.create_task(
                            self._lane(chat), name=f"webhook-chat-{chat}"
                        )
            await self.telegram.wait_for_update(time.monotonic() + 0.05)

    async def _lane(self, chat: int) -> None:
        """One chat's updates, one at a time and in order."""
        queue = self._queues[chat]
        while queue:
            await self._deliver(queue[0], chat)
            queue.popleft()

    async def _deliver(self, update: JSON, chat: int) -> None:
        update_id = int(update["update_id"])
        body = json.dumps(update).encode()
        pause = FIRST_RETRY
        while True:
            assert self._slots is not None
            async with self._slots:
                attempt = await self._post(update_id, body, chat)
            if attempt.delivered:
                self.telegram.webhook_delivered(update_id)
                return
            self.telegram.webhook_failed(_error_message(attempt))
            if not self.redeliver:
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_RETRY)

    async def _post(self, update_id: int, body: bytes, chat: int) -> Attempt:
        targets = self.targets()
        assert targets, "no replica to deliver to"
        name, base = targets[self._next % len(targets)]
        self._next += 1
        path = urlsplit(self.telegram.webhook_url).path or "/"
        headers = {"content-type": "application/json"}
        if self.telegram.webhook_secret_token:
            headers["x-telegram-bot-api-secret-token"] = self.telegram.webhook_secret_token
        attempt = Attempt(update_id, name, time.monotonic())
        self.attempts.append(attempt)
        assert self._client is not None
        try:
            answer = await self._client.post(f"{base}{path}", content=body, headers=headers)
        except httpx.ConnectError:
            attempt.outcome = REFUSED
        except httpx.TimeoutException:
            attempt.outcome = TIMEOUT
        except httpx.TransportError:
            attempt.outcome = DROPPED
        else:
            attempt.status = answer.status_code
            attempt.outcome = OK if answer.status_code == 200 else str(answer.status_code)
            if answer.status_code == 200 and self.recorded is not None:
                attempt.recorded = await self.recorded(update_id)
            if (
                answer.status_code == 200
                and chat in self.lossy_chats
                and update_id not in self._answer_lost
            ):
                self._answer_lost.add(update_id)
                attempt.outcome = ANSWER_LOST
        attempt.ended = time.monotonic()
        return attempt


def chat_of(update: JSON) -> int:
    """The chat an update belongs to (its own id when it has none): Telegram's delivery order."""
    for kind in ("message", "edited_message", "callback_query"):
        payload = update.get(kind)
        if isinstance(payload, dict):
            message = payload.get("message", payload)
            chat = message.get("chat") if isinstance(message, dict) else None
            if isinstance(chat, dict):
                return int(chat["id"])
            sender = payload.get("from")
            if isinstance(sender, dict):
                return int(sender["id"])
    return -int(update["update_id"])


def _error_message(attempt: Attempt) -> str:
    """getWebhookInfo's last_error_message for a failed delivery, in Telegram's words."""
    if attempt.outcome == REFUSED:
        return "Connection refused"
    if attempt.outcome in (DROPPED, ANSWER_LOST):
        return "Connection reset by peer"
    if attempt.outcome == TIMEOUT:
        return "Read timeout expired"
    return f"Wrong response from the webhook: {attempt.status}"


class Proxy:
    """The reverse proxy at PUBLIC_URL for everything but Telegram: each request to the next
    replica in turn, the one after when a connection is refused (nothing reached it); 502 when
    none takes it."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.forwarded: list[tuple[str, str, int]] = []  # (path, replica, status)
        self._next = 0
        self._client = httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0)
        )
        self.app = Starlette(routes=[Route("/{path:path}", self._forward, methods=["GET", "POST"])])

    async def aclose(self) -> None:
        """Close the client it forwards with."""
        await self._client.aclose()

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        targets = self.targets()
        for _ in range(len(targets)):
            name, base = targets[self._next % len(targets)]
            self._next += 1
            url = f"{base}{request.url.path}"
            try:
                answer = await self._client.request(
                    request.method, url, content=body, headers=headers
                )
            except httpx.ConnectError:
                continue
            except httpx.TransportError:
                break
            self.forwarded.append((request.url.path, name, answer.status_code))
            return Response(
                answer.content,
                status_code=answer.status_code,
                media_type=answer.headers.get("content-type"),
            )
        self.forwarded.append((request.url.path, "", 502))
        return Response("Bad Gateway", status_code=502, media_type="text/plain")
