"""sendVideo with the file streamed from disk, so a 50 MB video is never held in memory.

python-telegram-bot reads an upload into memory whole (InputFile); this one call goes
through httpx, which sends multipart file fields in chunks. Errors come back as PTB's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from telegram import InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT = httpx.Timeout(300.0, connect=15.0)


class VideoUploader:
    """Sends videos to one bot's chats through the Bot API."""

    def __init__(
        self,
        api_url: str,
        token: str,
        client: httpx.AsyncClient,
        limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        self._url = f"{api_url}/bot{token}/sendVideo"
        self._client = client
        # The bot's own flood control, so uploads share its budget and its 429 pauses.
        self._limiter = limiter

    async def send_video(
        self,
        chat_id: int,
        path: Path,
        *,
        caption: str,
        reply_to: int,
        reply_markup: InlineKeyboardMarkup | None,
        filename: str,
    ) -> None:
        """Upload `path` as a streamable video replying to `reply_to`; wait out flood control."""
        fields: dict[str, str] = {
            "chat_id": str(chat_id),
            "caption": caption,
            "parse_mode": "HTML",
            "supports_streaming": "true",
            "reply_parameters": json.dumps(
                {"message_id": reply_to, "allow_sending_without_reply": True}
            ),
        }
        if reply_markup is not None:
            fields["reply_markup"] = json.dumps(reply_markup.to_dict())
        if self._limiter is not None:
            data = {"chat_id": chat_id}
            args = (fields, path, filename)
            await self._limiter.process_request(self._attempt, args, {}, "sendVideo", data, None)
            return
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._attempt(fields, path, filename)
                return
            except RetryAfter as exc:
                if attempt == ATTEMPTS:
                    raise
                wait = exc.retry_after
                seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
                log.info("sendVideo: flood control, waiting %s s", seconds)
                await asyncio.sleep(seconds)

    async def _attempt(self, fields: dict[str, str], path: Path, filename: str) -> bool:
        body = await self._post(fields, path, filename)
        if body.get("ok") is True:
            return True
        wait = _retry_after(body)
        if wait is not None:
            raise RetryAfter(timedelta(seconds=wait))
        raise _error(body)

    async def _post(self, fields: dict[str, str], path: Path, filename: str) -> dict[str, Any]:
        try:
            with path.open("rb") as video:
                response = await self._client.post(
                    self._url,
                    data=fields,
                    files={"video": (filename, video, "video/mp4")},
                    timeout=TIMEOUT,
                )
        except httpx.TimeoutException:
            raise TimedOut("sendVideo timed out") from None
        except httpx.TransportError as exc:
            # The message of an httpx error can hold the URL, and the URL holds the token.
            raise NetworkError(f"sendVideo failed: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise NetworkError(f"sendVideo: HTTP {response.status_code} without a Bot API body")
        return body


def _retry_after(body: dict[str, Any]) -> float | None:
    if body.get("error_code") != 429:
        return None
    parameters = body.get("parameters") or {}
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    return float(value) if isinstance(value, int | float) and 0 <= value <= 3600 else 5.0


def _error(body: dict[str, Any]) -> Exception:
    description = str(body.get("description") or "unknown error")
    code = body.get("error_code")
    if code == 403:
        return Forbidden(description)
    if code == 400:
        return BadRequest(description)
    return NetworkError(f"sendVideo: {code} {description}")
