"""The web app: provider callbacks and /healthz, served by uvicorn beside the bot."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.providers.errors import CallbackRejectedError
from bot.services import Services

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024


class BodyTooLarge(Exception):
    """A request body over MAX_BODY."""


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than `limit` bytes whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge
    return bytes(body)


WEBHOOK_PATH = "/telegram"


def webhook_secret(token: str) -> str:
    """The `secret_token` Telegram echoes on every webhook call; stable across restarts."""
    return hashlib.sha256(f"kling-bot webhook {token}".encode()).hexdigest()


def build_web_app(services: Services, telegram: Application | None = None) -> Starlette:  # type: ignore[type-arg]
    """Routes for health and callbacks, and Telegram's webhook when `telegram` is given."""

    async def healthz(request: Request) -> JSONResponse:
        await services.db.schema_version()
        return JSONResponse({"status": "ok"})

    async def callback(request: Request) -> JSONResponse:
        backend = request.path_params["backend"]
        task_id = request.path_params["task_id"]
        try:
            body = await read_body(request)
        except BodyTooLarge:
            return JSONResponse({"error": "body too large"}, status_code=413)
        task = await services.tasks.get(task_id)
        given = str(request.path_params["secret"]).encode()
        if (
            task is None
            or task.backend != backend
            or not hmac.compare_digest(task.callback_secret.encode(), given)
        ):
            return JSONResponse({"error": "not found"}, status_code=404)
        provider = services.providers.get(backend)
        if provider is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        try:
            provider_task_id = provider.parse_callback(request.headers, body, time.time())
        except CallbackRejectedError as exc:
            log.warning("task %s: callback rejected: %s", task.id, exc.message)
            return JSONResponse({"error": "rejected"}, status_code=401)
        if task.provider_task_id is not None and not provider.is_same_task(
            task.provider_task_id, provider_task_id
        ):
            log.warning("task %s: callback names another provider task", task.id)
            return JSONResponse({"error": "task mismatch"}, status_code=400)
        # The body is only a hint: the tracker re-reads the task from the provider.
        await services.tracker.callback_arrived(task)
        return JSONResponse({"ok": True})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/callbacks/{backend:str}/{task_id:int}/{secret:str}", callback, methods=["POST"]),
    ]
    if telegram is not None:
        expected = webhook_secret(services.settings.token).encode()

        async def webhook(request: Request) -> JSONResponse:
            given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
            if not hmac.compare_digest(expected, given):
                return JSONResponse({"error": "forbidden"}, status_code=403)
            try:
                data = json.loads(await read_body(request))
                update = Update.de_json(data, telegram.bot)
            except BodyTooLarge:
                return JSONResponse({"error": "body too large"}, status_code=413)
            except (ValueError, TypeError, KeyError):
                return JSONResponse({"error": "not an update"}, status_code=400)
            await telegram.update_queue.put(update)
            return JSONResponse({"ok": True})

        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
    return Starlette(routes=routes)


class WebServer(uvicorn.Server):
    """uvicorn without its own signal handling: the bot owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
