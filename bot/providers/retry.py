"""Retry provider calls that were refused for a passing reason, with backoff and jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.providers.errors import ProviderError

T = TypeVar("T")


def surely_not_accepted(error: ProviderError) -> bool:
    """A passing refusal after which the provider surely started nothing: safe to send again.

    Only refusals documented as dropping the request (kie 429/455, Kling 1302/1303) and
    connections that failed before sending qualify; a timeout, a reset, a 5xx or a broken
    body may follow an accepted task, and repeating a create could pay twice.
    """
    return error.retryable and error.started_nothing


def backoff(attempt: int, base: float, cap: float, hint: float | None = None) -> float:
    """Seconds before attempt `attempt + 1`: the server's hint, else exponential with jitter."""
    if hint is not None and hint > 0:
        return min(hint, cap)
    delay: float = min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
    return delay


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base: float,
    cap: float = 30.0,
    should_retry: Callable[[ProviderError], bool] = surely_not_accepted,
) -> T:
    """Run `call`, again after a pause while it fails with an error `should_retry` accepts."""
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ProviderError as exc:
            if attempt == attempts or not should_retry(exc):
                raise
            await asyncio.sleep(backoff(attempt, base, cap, getattr(exc, "retry_after", None)))
    raise AssertionError("unreachable")
