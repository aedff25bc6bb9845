"""Logging that never shows a secret: tokens, keys and Telegram file URLs are masked."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

# A bot token anywhere, in particular in Bot API and file URLs.
_TOKEN = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")
# A callback path ends in its task's secret (uvicorn's access log shows paths). A backslash
# ends it too: in a JSON line it starts an escape, which masking must leave whole.
_CALLBACK_SECRET = re.compile(r"(/callbacks/[^/\s]+/[^/\s]+/)[^/\s\"'?#\\]+")
MASK = "[redacted]"
# uvicorn's loggers: left to uvicorn they print through handlers of their own, unmasked.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]


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


class JsonFormatter(RedactingFormatter):
    """One JSON object per line (time in UTC, level, logger, message, exception), masked."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("%(message)s", secrets)

    def format(self, record: logging.LogRecord) -> str:
        """The record as a masked JSON line."""
        created = datetime.fromtimestamp(record.created, UTC)
        entry = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # Each value is masked before JSON escapes it (a secret holding a quote or a backslash
        # would no longer match), and the line after, as every line is.
        line = json.dumps({k: self.redact(v) for k, v in entry.items()}, ensure_ascii=False)
        return self.redact(line)


def configure_logging(
    secrets: Iterable[str],
    *,
    level: int | str = logging.INFO,
    form: LogFormat = "text",
    stream: TextIO | None = None,
) -> None:
    """Log to stderr through a redacting formatter, uvicorn too; quiet the chatty libraries."""
    handler = logging.StreamHandler(stream)
    formatter = (
        JsonFormatter(secrets) if form == "json" else RedactingFormatter(TEXT_FORMAT, secrets)
    )
    handler.setFormatter(formatter)
    # On the handler too: loggers with a level of their own (uvicorn's, the quieted ones below)
    # would otherwise pass records under the root's level.
    handler.setLevel(level)
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
