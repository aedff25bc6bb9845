"""Telegram's flood limits: 30 messages a second per bot, in one process or across replicas."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram.constants import FloodLimit
from telegram.ext import AIORateLimiter, BaseRateLimiter

from bot.chat import answers
from bot.engine.gate import GateMaker

Answer = bool | dict[str, Any] | list[dict[str, Any]]
GATE = "telegram:overall"
# Requests per seconds: the whole bot's (a sliding window here), and each group chat's.
OVERALL_RATE = (int(FloodLimit.MESSAGES_PER_SECOND), 1.0)
GROUP_RATE = (int(FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP), 60.0)
# Long polls are not messages; Telegram limits what the bot sends.
UNLIMITED = frozenset({"getUpdates"})


class FloodLimiter(BaseRateLimiter[int]):
    """The overall rate through a RateGate (this process's, or one every replica shares), so
    that no second holds more than 30 requests by Telegram's clock; per-group limits and
    retries after a flood wait by PTB's AIORateLimiter."""

    def __init__(self, gates: GateMaker, *, max_retries: int) -> None:
        self._gate = gates(GATE, *OVERALL_RATE)
        group_rate, group_period = GROUP_RATE
        # PTB's own overall limit is a bucket that lets up to twice the rate into a second.
        self._inner = AIORateLimiter(
            overall_max_rate=0,
            group_max_rate=group_rate,
            group_time_period=group_period,
            max_retries=max_retries,
        )

    async def initialize(self) -> None:
        """Start PTB's limiter."""
        await self._inner.initialize()

    async def shutdown(self) -> None:
        """Stop PTB's limiter."""
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
        """Send through the group limit, then the overall gate (each retry too); a message
        the update being handled sent already (its first holder died) is not sent again."""
        if endpoint in UNLIMITED:
            return await callback(*args, **kwargs)
        book = answers.current()
        request = book.request(endpoint, data) if book is not None else None
        if book is not None and request is not None:
            earlier = book.sent_before(request)
            if earlier is not None:
                return earlier

        async def gated(*call_args: Any, **call_kwargs: Any) -> Answer:
            async with self._gate.slot():
                return await callback(*call_args, **call_kwargs)

        # As in PTB: the overall limit is on messages to chats (not callback answers).
        sent = gated if "chat_id" in data else callback
        reply = await self._inner.process_request(
            sent, args, kwargs, endpoint, data, rate_limit_args
        )
        if book is not None and request is not None:
            await book.record(request, reply)
        return reply
