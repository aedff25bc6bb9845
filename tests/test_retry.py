"""Retrying provider calls: which errors, how often, how long."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import httpx
import pytest

from bot.providers import retry
from bot.providers.errors import (
    InsufficientCreditsError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
)
from bot.providers.http import json_body, send
from bot.providers.kie import raise_for_code
from bot.providers.kling_wire import error_for


async def run(errors: list[ProviderError], attempts: int = 4) -> tuple[str, int]:
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if errors:
            raise errors.pop(0)
        return "ok"

    return await retry.with_retries(call, attempts=attempts, base=0.001), calls


async def test_passing_refusals_are_retried() -> None:
    errors: list[ProviderError] = [
        RateLimitError("slow down", code=1303),
        ServiceUnavailableError("maintenance", code=455, started_nothing=True),
        ProviderConnectionError("refused"),
    ]
    assert await run(errors) == ("ok", 4)


def kie_error(status: int, body: bytes, content_type: str = "application/json") -> ProviderError:
    response = httpx.Response(status, content=body, headers={"content-type": content_type})
    try:
        raise_for_code(json_body(response), response)
    except ProviderError as exc:
        return exc
    raise AssertionError("no error")


def kling_error(status: int, code: int) -> ProviderError:
    response = httpx.Response(status, json={"code": code, "message": "m"})
    return error_for(code, "m", response)


async def transport_error(exc: Exception) -> ProviderError:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        try:
            await send(client, client.build_request("POST", "https://api.kie.ai/x"))
        except ProviderError as error:
            return error
    raise AssertionError("no error")


HTML_524 = b"<html><body><h1>Error 524</h1>A timeout occurred</body></html>"


@pytest.mark.parametrize(
    ("case", "repeatable"),
    [
        # Documented as dropping the request: nothing started, safe to send again.
        (lambda: kie_error(200, b'{"code": 429, "msg": "rate limited"}'), True),
        (lambda: kie_error(200, b'{"code": 455, "msg": "maintenance"}'), True),
        (lambda: kling_error(429, 1302), True),
        (lambda: kling_error(429, 1303), True),
        (lambda: transport_error(httpx.ConnectError("refused")), True),
        (lambda: transport_error(httpx.ConnectTimeout("slow")), True),
        (lambda: transport_error(httpx.PoolTimeout("no free connection")), True),
        # After the request left: the provider may have accepted (and charged) it.
        (lambda: kie_error(200, b'{"code": 500, "msg": "server error"}'), False),
        (lambda: kie_error(200, b'{"code": 200, "msg": "succ'), False),
        (lambda: kie_error(200, b"<html>OK</html>", "text/html"), False),
        (lambda: kie_error(502, b"<html>Bad Gateway</html>", "text/html"), False),
        (lambda: kie_error(524, HTML_524, "text/html"), False),
        (lambda: kie_error(504, b""), False),
        (lambda: kie_error(408, b"", "text/plain"), False),
        (lambda: kling_error(500, 5000), False),
        (lambda: kling_error(503, 5001), False),
        (lambda: transport_error(httpx.ReadTimeout("no answer")), False),
        (lambda: transport_error(httpx.RemoteProtocolError("reset")), False),
        (lambda: transport_error(httpx.ReadError("connection reset by peer")), False),
        (lambda: transport_error(httpx.WriteError("broken pipe")), False),
        (lambda: transport_error(httpx.DecodingError("not gzip")), False),
        (lambda: transport_error(httpx.TooManyRedirects("loop")), False),
        (lambda: kie_error(200, b"[" * 100_000), False),  # nested past the recursion limit
    ],
)
async def test_only_documented_drops_and_unsent_requests_may_be_repeated(
    case: Callable[[], ProviderError | Awaitable[ProviderError]], repeatable: bool
) -> None:
    made = case()
    error = await made if inspect.isawaitable(made) else made
    assert retry.surely_not_accepted(error) is repeatable, error


async def test_uncertain_and_final_errors_are_not_retried() -> None:
    for error in (ProviderTimeoutError("read timeout"), InsufficientCreditsError("no credits")):
        calls = 0

        async def call(error: ProviderError = error) -> str:
            nonlocal calls
            calls += 1
            raise error

        with pytest.raises(type(error)):
            await retry.with_retries(call, attempts=5, base=0.001)
        assert calls == 1


async def test_gives_up_after_the_last_attempt() -> None:
    with pytest.raises(RateLimitError):
        await run([RateLimitError("x")] * 3, attempts=3)


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    delays = [retry.backoff(n, base=1.0, cap=30.0) for n in (1, 2, 3, 4, 10)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert delays[4] <= 30.0
    assert retry.backoff(1, base=1.0, cap=30.0, hint=7.0) == 7.0
    assert retry.backoff(1, base=1.0, cap=30.0, hint=600.0) == 30.0
