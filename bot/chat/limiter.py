"""Telegram's flood limits for a bot with several replicas: the overall rate shared by all."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.constants import FloodLimit
from telegram.ext import AIORateLimiter, BaseRateLimiter

from bot.engine.gate import wait_for_slot
from storage.rates import RateSlots

Answer = bool | dict[str, Any] | list[dict[str, Any]]
GATE = "telegram:overall"
# Long polls are not messages; Telegram limits what the bot sends.
UNLIMITED = frozenset({"getUpdates"})


class SharedRateLimiter(BaseRateLimiter[int]):
    """PTB's AIORateLimiter per process (per-chat limits, retries after flood waits), with the
    overall 30 messages a second taken from slots every replica shares."""

    def __init__(self, slots: RateSlots, *, max_retries: int) -> None:
        self._slots = slots
        self._inner = AIORateLimiter(max_retries=max_retries)
        self._rate = int(FloodLimit.MESSAGES_PER_SECOND)
        self._window = 1.0
        self._turn = asyncio.Lock()

    async def initialize(self) -> None:
        """Start the per-process limiter."""
        await self._inner.initialize()

    async def shutdown(self) -> None:
        """Stop the per-process limiter."""
        await self._inner.shutdown()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Answer]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Answer:
        """Wait for a shared slot, then go through the per-process limits."""
        if endpoint not in UNLIMITED:
            # One request of this process at a time asks the database (see SharedRateGate).
            async with self._turn:
                await wait_for_slot(self._slots, GATE, self._rate, self._window)
        return await self._inner.process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )
