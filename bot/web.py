"""The web app: provider callbacks and /healthz, served by uvicorn beside the bot."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import socket
import time
from collections.abc import Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp
from telegram import Bot, Update

from bot.chat.services import Services
from bot.chat.updates import OnceApplication
from bot.providers.errors import CallbackRejectedError
from storage.updates import Turn

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
# SQLite's INTEGER is a signed 64-bit number; task ids are written as the bot builds them.
MAX_TASK_ID = 2**63 - 1
_TASK_ID = re.compile(r"[1-9][0-9]{0,18}")


def parse_task_id(text: str) -> int | None:
    """The task id a callback path names, or None when it cannot be one."""
    if _TASK_ID.fullmatch(text) is None:
        return None
    task_id = int(text)
    return task_id if task_id <= MAX_TASK_ID else None


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


def parse_update(body: bytes, bot: Bot) -> Update | None:
    """The update a webhook body carries, or None when it is not one."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or type(data.get("update_id")) is not int:
        return None
    try:
        return Update.de_json(data, bot)
    # PTB raises whatever a malformed field provokes (AttributeError, OverflowError, ...).
    except Exception:
        return None


def build_web_app(services: Services, telegram: OnceApplication | None = None) -> Starlette:
    """Routes for health and callbacks, and Telegram's webhook when `telegram` is given."""

    async def healthz(request: Request) -> JSONResponse:
        await services.db.schema_version()
        return JSONResponse({"status": "ok"})

    async def callback(request: Request) -> JSONResponse:
        backend = request.path_params["backend"]
        task_id = parse_task_id(request.path_params["task_id"])
        if task_id is None:
            return JSONResponse({"error": "not found"}, status_code=404)
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
        # The body is only a hint: the task is re-read from the provider before it counts.
        if task.provider_task_id is None:
            # The create's answer was lost (or is still on its way): the provider did start it.
            services.submitter.adopt_later(task, provider_task_id)
        else:
            await services.tracker.callback_arrived(task)
        return JSONResponse({"ok": True})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/callbacks/{backend:str}/{task_id:str}/{secret:str}", callback, methods=["POST"]),
    ]
    if telegram is not None:
        expected = webhook_secret(services.settings.token).encode()

        async def webhook(request: Request) -> JSONResponse:
            given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
            if not hmac.compare_digest(expected, given):
                return JSONResponse({"error": "forbidden"}, status_code=403)
            try:
                update = parse_update(await read_body(request), telegram.bot)
            except BodyTooLarge:
                return JSONResponse({"error": "body too large"}, status_code=413)
            if update is None:
                return JSONResponse({"error": "not an update"}, status_code=400)
            # Answered only once handled and recorded: Telegram sends again what a replica that
            # died did not finish, and what another is handling right now (503).
            if await telegram.process_once(update, wait=False) is Turn.BUSY:
                return JSONResponse({"error": "being handled"}, status_code=503)
            return JSONResponse({"ok": True})

        routes.append(Route(WEBHOOK_PATH, webhook, methods=["POST"]))
    return Starlette(routes=routes)


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host`:`port` for the web app; OSError when it cannot be had."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def server_config(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the web app: its logs go to the root handler, masked like ours."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn's own config would give its loggers handlers that print unmasked.
        log_config=None,
        log_level="warning",
        # False would stop "uvicorn.access" propagating; its INFO lines are below the level.
        access_log=True,
        lifespan="off",
    )


class WebServer(uvicorn.Server):
    """uvicorn without its own signal handling: the bot owns shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
