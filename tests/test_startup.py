"""Start-up failures end in one clear line without a secret, and leave nothing behind."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
from telegram.error import BadRequest, InvalidToken, NetworkError, TimedOut

from bot.app import StartupError, telegram_refusal
from tests.conftest import TOKEN

Run = Callable[..., Any]
API = "https://api.telegram.org"


def test_a_refused_token_is_explained_without_quoting_it() -> None:
    refused = InvalidToken(f"The token `{TOKEN}` was rejected by the server.")
    line = telegram_refusal(refused, API)
    assert (
        line
        == f"the Bot API at {API} refused TELEGRAM_BOT_TOKEN; set the token @BotFather gave you."
    )


@pytest.mark.parametrize("error", [TimedOut(), NetworkError("httpx.ConnectError: refused")])
def test_an_unreachable_bot_api_is_explained(error: NetworkError) -> None:
    line = telegram_refusal(error, API)
    assert line is not None and line.startswith(f"cannot reach the Bot API at {API} (")


@pytest.mark.parametrize("error", [BadRequest("Bad Request: chat not found"), ValueError("x")])
def test_other_errors_are_not_taken_for_an_unreachable_bot_api(error: Exception) -> None:
    assert telegram_refusal(error, API) is None


async def test_a_refused_webhook_is_one_line_and_frees_the_port(harness: Run) -> None:
    async with harness(start=False, callbacks=True, telegram_webhook=True) as h:
        h.telegram.allow_loopback_http_webhook = False  # Telegram's own answer to http://
        with pytest.raises(StartupError) as refused:
            await h.start()
        url = f"{h.settings.public_url}/telegram"
        assert str(refused.value) == (
            f"Telegram refused the webhook {url} "
            "(Bad webhook: an https url must be provided for webhook); check PUBLIC_URL."
        )
        with socket.socket() as again:
            again.bind((h.settings.http_host, h.settings.http_port))


async def test_a_busy_port_stops_the_start_before_telegram_is_called(harness: Run) -> None:
    async with harness(start=False) as h:
        with socket.socket() as taken:
            taken.bind((h.settings.http_host, h.settings.http_port))
            taken.listen()
            with pytest.raises(StartupError, match=f"cannot listen on .*:{h.settings.http_port}"):
                await h.start()
        assert h.telegram.calls == []
