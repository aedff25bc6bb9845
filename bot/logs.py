"""Logging that never shows a secret: tokens, keys and Telegram file URLs are masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import TextIO

# A bot token anywhere, in particular in Bot API and file URLs.
_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")
# A callback path ends in its task's secret (uvicorn's access log shows paths).
_CALLBACK_SECRET = re.compile(r"(/callbacks/[^/\s]+/[^/\s]+/)[^/\s\"'?#]+")
MASK = "[redacted]"
# uvicorn's loggers: left to uvicorn they print through handlers of their own, unmasked.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then masks every secret in the whole line, tracebacks included."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record with secrets masked."""
        return self.redact(super().format(record))

    def redact(self, text: str) -> str:
        """`text` with secrets masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        text = _CALLBACK_SECRET.sub(rf"\g<1>{MASK}", text)
        return _TOKEN.sub(MASK, text)


def configure_logging(
    secrets: Iterable[str], *, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Log to stderr through the redacting formatter, uvicorn too; quiet the chatty libraries."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every request URL at INFO, and Bot API URLs carry the token.
    for name in ("httpx", "httpcore", "telegram.ext.ExtBot", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
