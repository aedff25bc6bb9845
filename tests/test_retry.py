"""Retrying provider calls: which errors, how often, how long."""

from __future__ import annotations

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
        ServiceUnavailableError("maintenance", code=455),
        ProviderConnectionError("refused"),
    ]
    assert await run(errors) == ("ok", 4)


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
