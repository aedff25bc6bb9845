"""Telegram's flood limits: 30 messages a second per bot, in one process or across replicas."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

from telegram.constants import FloodLimit
from telegram.ext import AIORateLimiter, BaseRateLimiter

from bot.chat import answers
from bot.engine.gate import GateMaker, RateGate

Answer = bool | dict[str, Any] | list[dict[str, Any]]
GATE = "telegram:overall"
# Requests per seconds: the whole bot's (a sliding window here), and each group chat's.
OVERALL_RATE = (int(FloodLimit.MESSAGES_PER_SECOND), 1.0)
GROUP_RATE = (int(FloodLimit.MESSAGES_PER_MINUTE_PER_GROUP), 60.0)
# Group chats' gates kept before the idle ones are forgotten.
KEPT_GROUP_GATES = 256
# Long polls are not messages; Telegram limits what the bot sends.
UNLIMITED = frozenset({"getUpdates"})


class FloodLimiter(BaseRateLimiter[int]):
    """Telegram's overall rate and each group's through RateGates (this process's, or ones
    every replica shares), so that no second holds more than 30 messages by Telegram's clock
    nor a minute more than 20 to one group; retries after a flood wait by PTB's limiter."""

    def __init__(self, gates: GateMaker, *, max_retries: int) -> None:
        self._gates = gates
        self._overall = gates(GATE, *OVERALL_RATE)
        self._groups: dict[int | str, RateGate] = {}
        # PTB's own overall limit is a bucket that lets up to twice the rate into a second,
        # and its group limits are its process's alone: PTB here only retries flood waits.
        self._inner = AIORateLimiter(overall_max_rate=0, group_max_rate=0, max_retries=max_retries)

    def _group_gate(self, chat: int | str) -> RateGate:
        """The gate of one group chat (20 messages a minute), made when first needed."""
        gate = self._groups.get(chat)
        if gate is None:
            if len(self._groups) >= KEPT_GROUP_GATES:
                # Forget the groups not written to lately (their windows have ended).
                self._groups = {c: g for c, g in self._groups.items() if not g.idle()}
            gate = self._groups[chat] = self._gates(f"telegram:group:{chat}", *GROUP_RATE)
        return gate

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

        group = _group(data.get("chat_id"))

        async def gated(*call_args: Any, **call_kwargs: Any) -> Answer:
            async with contextlib.AsyncExitStack() as limits:
                if group is not None:
                    await limits.enter_async_context(self._group_gate(group).slot())
                await limits.enter_async_context(self._overall.slot())
                return await callback(*call_args, **call_kwargs)

        # As in PTB: the limits are on messages to chats (not callback answers).
        sent = gated if "chat_id" in data else callback
        reply = await self._inner.process_request(
            sent, args, kwargs, endpoint, data, rate_limit_args
        )
        if book is not None and request is not None:
            await book.record(request, reply)
        return reply


def _group(chat_id: object) -> int | str | None:
    """The chat when it is a group or channel (as PTB tells them: a negative id or a name)."""
    if isinstance(chat_id, str):
        with contextlib.suppress(ValueError):
            chat_id = int(chat_id)
    if isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0):
        return chat_id
    return None
