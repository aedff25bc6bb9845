"""Whatever logs a secret, from our code to uvicorn's error log, prints it masked or not at all."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn.config
from starlette.applications import Starlette

from bot.config import Settings
from bot.logs import MASK, LogFormat, RedactingFormatter, configure_logging
from bot.web import server_config
from tests.conftest import KIE_KEY, KLING_ACCESS, KLING_SECRET, TOKEN, TUZI_KEY

HMAC_KEY = "kie-hmac-key-0123456789"
KLING_API_KEY = "kling-api-key-0123456789"
CALLBACK_SECRET = "Zq3xCallbackSecret_0123456789abcd"
FILE_URL = f"https://api.telegram.org/file/bot{TOKEN}/photos/file_7.jpg"
SETTINGS = Settings(  # type: ignore[call-arg]
    _env_file=None,
    telegram_bot_token=TOKEN,
    kie_api_key=KIE_KEY,
    kie_webhook_hmac_key=HMAC_KEY,
    kling_access_key=KLING_ACCESS,
    kling_secret_key=KLING_SECRET,
    kling_api_key=KLING_API_KEY,
    tuzi_api_key=TUZI_KEY,
)
KEYS = [KIE_KEY, HMAC_KEY, KLING_ACCESS, KLING_SECRET, KLING_API_KEY, TUZI_KEY]
SECRETS = [TOKEN, TOKEN.split(":")[1], *KEYS, CALLBACK_SECRET, FILE_URL]
# Every logger that can print: ours, the libraries we use, uvicorn's, the root.
LOGGERS = [
    "bot",
    "bot.engine.submit",
    "storage",
    "telegram",
    "telegram.ext",
    "telegram.ext.ExtBot",
    "httpx",
    "httpcore",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "asyncio",
    "some.library",
    "",
]


@pytest.fixture
def saved_logging() -> Iterator[None]:
    """Put every logger this test touches back as it was."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        yield
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled


def leak_everything(name: str) -> None:
    """Log every secret through `name`, as a message, an argument and in a traceback."""
    logger = logging.getLogger(name)
    logger.warning("marker-%s: token %s, keys %s, file %s", name or "root", TOKEN, KEYS, FILE_URL)
    logger.warning(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5",
        "POST",
        f"/callbacks/kie/7/{CALLBACK_SECRET}",
        "1.1",
        500,
    )
    try:
        try:
            raise ConnectionError(f"GET {FILE_URL} with key {KIE_KEY}")
        except ConnectionError as exc:
            raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.") from exc
    except RuntimeError:
        logger.exception("traceback-%s", name or "root")


@pytest.mark.parametrize("form", ["text", "json"])
def test_no_logger_prints_a_secret(
    capfd: pytest.CaptureFixture[str], saved_logging: None, form: LogFormat
) -> None:
    # As the test fakes' servers (or any uvicorn run with its defaults) leave them.
    logging.config.dictConfig(copy.deepcopy(uvicorn.config.LOGGING_CONFIG))
    configure_logging(SETTINGS.secrets(), form=form)
    # Built after, as the bot builds it when the web app starts.
    server_config(Starlette(), "127.0.0.1", 0)
    for name in LOGGERS:
        leak_everything(name)
    out, err = capfd.readouterr()
    for secret in SECRETS:
        assert secret not in out + err
    assert out == ""
    assert err.count("Traceback (most recent call last)") == 2 * len(LOGGERS)
    assert err.count(f"/callbacks/kie/7/{MASK}") == len(LOGGERS)
    if form == "json":
        entries = [json.loads(line) for line in err.splitlines()]
        lines = [f"{e['level']} {e['logger'] or 'root'}: {e['message']}" for e in entries]
        assert len(lines) == 3 * len(LOGGERS)
        assert all("Traceback" in e["exception"] for e in entries if "traceback-" in e["message"])
    else:
        lines = err.splitlines()
    for name in LOGGERS:
        assert any(f"marker-{name or 'root'}: token {MASK}" in line for line in lines)
        assert any(f"ERROR {name or 'root'}: traceback-{name or 'root'}" in line for line in lines)


def test_json_lines_are_objects_with_utc_time_and_mask_what_json_escapes(
    saved_logging: None,
) -> None:
    quoted = 'key-with-"quote"-and-\\backslash'
    stream = io.StringIO()
    configure_logging([*SETTINGS.secrets(), quoted], form="json", stream=stream)
    logger = logging.getLogger("bot")
    logger.info("plain")
    logger.warning("secret %s and path /callbacks/kie/7/%s\\tail", quoted, CALLBACK_SECRET)
    try:
        raise ValueError(f"bad key {quoted} for {TOKEN}")
    except ValueError:
        logger.exception("failed")
    plain, warned, failed = (json.loads(line) for line in stream.getvalue().splitlines())
    assert set(plain) == {"time", "level", "logger", "message"}
    assert (plain["level"], plain["logger"], plain["message"]) == ("INFO", "bot", "plain")
    moment = datetime.fromisoformat(plain["time"])
    assert moment.utcoffset() == timedelta(0) and plain["time"].endswith("Z")
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60
    assert warned["message"] == f"secret {MASK} and path /callbacks/kie/7/{MASK}\\tail"
    assert failed["message"] == "failed" and failed["level"] == "ERROR"
    assert failed["exception"].startswith("Traceback (most recent call last)")
    assert failed["exception"].endswith(f"ValueError: bad key {MASK} for {MASK}")
    assert quoted not in stream.getvalue() and TOKEN not in stream.getvalue()


@pytest.mark.parametrize("form", ["text", "json"])
def test_log_level_holds_for_every_logger(saved_logging: None, form: LogFormat) -> None:
    logging.config.dictConfig(copy.deepcopy(uvicorn.config.LOGGING_CONFIG))
    stream = io.StringIO()
    configure_logging(SETTINGS.secrets(), level="ERROR", form=form, stream=stream)
    server_config(Starlette(), "127.0.0.1", 0)
    for name in ("bot", "httpx", "uvicorn.error", "telegram"):
        logging.getLogger(name).warning("hidden-%s", name)
        logging.getLogger(name).error("shown-%s", name)
    text = stream.getvalue()
    assert "hidden" not in text and text.count("shown-") == 4
    stream = io.StringIO()
    configure_logging(SETTINGS.secrets(), level="DEBUG", form=form, stream=stream)
    logging.getLogger("bot.engine").debug("detail")
    logging.getLogger("httpx").info(f"GET https://api.telegram.org/bot{TOKEN}/getMe")
    assert "detail" in stream.getvalue() and "getMe" not in stream.getvalue()


def test_uvicorn_logs_through_the_root_handler_only(saved_logging: None) -> None:
    logging.config.dictConfig(copy.deepcopy(uvicorn.config.LOGGING_CONFIG))
    configure_logging(SETTINGS.secrets())
    server_config(Starlette(), "127.0.0.1", 0)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        assert logger.handlers == [] and logger.propagate, name
    (handler,) = logging.getLogger().handlers
    assert isinstance(handler.formatter, RedactingFormatter)
