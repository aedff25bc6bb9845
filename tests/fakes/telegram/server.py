"""The fake Telegram as a Starlette app: routing, recorded calls, faults, holds and delays."""

from __future__ import annotations

import inspect
import mimetypes
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.common import Gates, Hold, Outcome
from tests.fakes.telegram.errors import (
    DEFAULT_FAULT,
    NGINX_STATUSES,
    UNAVAILABLE,
    ApiError,
    http_phrase,
)
from tests.fakes.telegram.methods import BotMethods, MethodCall
from tests.fakes.telegram.parsing import read_params
from tests.fakes.telegram.state import Call, TelegramState

BLOCKED = "Forbidden: bot was blocked by the user"
HELD = "held"
CLIENT_GONE = "client disconnected"


@dataclass
class _Fault:
    status: int
    description: str
    retry_after: int | None
    remaining: int
    page: bool


class FakeTelegram(TelegramState):
    """An in-memory Telegram Bot API served as a Starlette app (`app`).

    It refuses what the Bot API refuses, webhooks included: Telegram wants an https URL on a
    public address and port 80, 88, 443 or 8443. `allow_loopback_http_webhook` is for tests
    that run the bot in webhook mode: its web server listens on plain HTTP on 127.0.0.1 (where
    production puts a TLS proxy on a public name), and the test posts the updates to it
    itself. With it on, setWebhook also takes http and https URLs on a loopback address, any
    port; everything else is still refused as Telegram would.
    """

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        bot_username: str = "kling_test_bot",
        *,
        allow_loopback_http_webhook: bool = False,
    ) -> None:
        super().__init__(token, bot_username)
        self.allow_loopback_http_webhook = allow_loopback_http_webhook
        self._methods = BotMethods(self)
        self._faults: dict[str, deque[_Fault]] = {}
        self._gates = Gates(None)
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
            ]
        )

    # ----- fault knobs ------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 400,
        description: str = DEFAULT_FAULT,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail with this error.

        Without a description, 5xx statuses say their HTTP phrase; 502-504 then come as nginx's
        HTML page, as api.telegram.org sends them.
        """
        page = False
        if status == 429:
            retry_after = 1 if retry_after is None else retry_after
            if description == DEFAULT_FAULT:
                description = f"Too Many Requests: retry after {retry_after}"
        elif status >= 500 and description == DEFAULT_FAULT:
            description = http_phrase(status)
            page = status in NGINX_STATUSES
        fault = _Fault(status, description, retry_after, times, page)
        self._faults.setdefault(method.lower(), deque()).append(fault)

    def hold(self, endpoint: str, *, after: bool = False, times: int | None = None) -> Hold:
        """Hold the next `times` calls of a method, or "file" downloads (all when None).

        Before the work (``after=False``) the call is recorded but not handled; after it, the
        work is done (message stored, file served) and only the answer waits.
        """
        return self._gates.hold(endpoint.lower(), after=after, times=times)

    def delay(self, method: str, seconds: float, times: int | None = None) -> None:
        """Answer the next `times` calls of `method` (all when None) `seconds` after the work."""
        self._gates.delay(method.lower(), seconds, times)

    def shutdown(self) -> None:
        """Release every long poll now, answer held calls 503 and later polls at once."""
        self.closed = True
        self._gates.closed = True
        self.wake_pollers()

    # ----- HTTP -------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        name = request.path_params["method"]
        try:
            params, uploads = await read_params(request)
        except ApiError as err:
            self.calls.append(Call(name, {}, {}, time.monotonic(), err.status, None, str(err)))
            return err.response()
        files = {field_name: upload.content for field_name, upload in uploads.items()}
        call = Call(self._methods.canonical(name), params, files, time.monotonic())
        call.client = _client(request)
        self.calls.append(call)
        plan = self._gates.take(name.lower())
        if plan.before is not None:
            call.status, call.error = 0, HELD
            outcome = await self._gates.before_work(request.receive, plan)
            if outcome != "go":
                return _dropped(call, outcome)
            call.status, call.error = 200, None
        response: Response
        try:
            result = await self._dispatch(request, call, MethodCall(params, uploads, request))
        except ApiError as err:
            call.status, call.error = err.status, err.description
            response = err.response()
        else:
            call.result = result
            response = JSONResponse({"ok": True, "result": result})
        # A client that left never reads the answer; uvicorn drops it quietly.
        if await self._gates.before_answer(request.receive, plan) == "closed":
            return ApiError(503, UNAVAILABLE).response()
        return response

    async def _dispatch(self, request: Request, call: Call, method_call: MethodCall) -> Any:
        if request.path_params["token"] != self.token:
            raise ApiError(401, "Unauthorized")
        handler = self._methods.handlers.get(call.method)
        if handler is None:
            raise ApiError(404, "Not Found")
        self._raise_fault(call.method)
        chat_id = method_call.params.get("chat_id")
        if isinstance(chat_id, int) and chat_id in self.blocked_users:
            raise ApiError(403, BLOCKED)
        result = handler(method_call)
        return await result if inspect.isawaitable(result) else result

    def _raise_fault(self, method: str) -> None:
        faults = self._faults.get(method.lower())
        if not faults:
            return
        fault = faults[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            faults.popleft()
        raise ApiError(fault.status, fault.description, fault.retry_after, page=fault.page)

    async def _download(self, request: Request) -> Response:
        plan = self._gates.take("file")
        if await self._gates.before_work(request.receive, plan) != "go":
            return ApiError(503, UNAVAILABLE).response()
        response = self._file(request)
        if await self._gates.before_answer(request.receive, plan) == "closed":
            return ApiError(503, UNAVAILABLE).response()
        return response

    def _file(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return ApiError(401, "Unauthorized").response()
        stored = self.file_at(request.path_params["path"])
        if stored is None:
            return ApiError(404, "Not Found").response()
        self.file_downloads.append(stored.file_path)
        media_type = mimetypes.guess_type(stored.file_path)[0] or "application/octet-stream"
        return Response(stored.content, media_type=media_type)


def _client(request: Request) -> tuple[str, int] | None:
    return None if request.client is None else (request.client.host, request.client.port)


def _dropped(call: Call, outcome: Outcome) -> Response:
    """Record how a call held before its handling ended, and answer it 503."""
    if outcome == "gone":
        call.error = CLIENT_GONE
    else:
        call.status, call.error = 503, UNAVAILABLE
    return ApiError(503, UNAVAILABLE).response()
