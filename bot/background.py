"""Run a coroutine alongside a block of code, and stop it when the block ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def alongside(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `work` while the block runs; cancel it (and wait for it) when the block ends."""
    job = asyncio.create_task(work)
    try:
        yield
    finally:
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job


async def every(seconds: float, step: Callable[[], Awaitable[object]], failed: str) -> None:
    """Run `step` every `seconds` (the first after one wait) until cancelled; a step that
    raises is logged as `failed`, and the next one still comes."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await step()
        except Exception:
            log.exception(failed)


async def cancelled(job: asyncio.Task[Any] | None) -> None:
    """Cancel `job` (if there is one) and wait until it has ended."""
    if job is None:
        return
    job.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await job
