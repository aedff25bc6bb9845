"""Rate limits shared by processes on one database: never more than the limit in a window."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from bot.chat.limiter import SharedRateLimiter
from bot.engine.gate import SharedRateGate
from storage.rates import RateSlots
from tests.storage.conftest import Store


def most_in_a_window(moments: list[float], window: float) -> int:
    """The most moments inside any `window` seconds."""
    moments = sorted(moments)
    return max(
        sum(1 for later in moments[i:] if later - first < window) for i, first in enumerate(moments)
    )


async def test_slots_taken_at_once_from_two_processes_keep_the_limit(store: Store) -> None:
    async with store.open() as one, store.open() as two:
        takes = [RateSlots(db).take("kie:create", 5, 60.0) for db in (one, two) for _ in range(10)]
        waits = await asyncio.gather(*takes)
    assert sum(1 for wait in waits if wait == 0) == 5
    assert all(0 < wait <= 60 for wait in waits if wait)


async def test_two_replicas_gates_let_through_the_limit_together(store: Store) -> None:
    async with store.open() as one, store.open() as two:
        gates = [SharedRateGate(RateSlots(db), "kie:status", 3, 0.4) for db in (one, two)]
        passed: list[float] = []

        async def call(gate: SharedRateGate) -> None:
            await gate.acquire()
            passed.append(time.monotonic())

        await asyncio.gather(*(call(gate) for gate in gates for _ in range(6)))
    assert len(passed) == 12
    # Each gate alone would let 3 through per window: together still 3, not 6.
    assert most_in_a_window(passed, 0.35) <= 3


async def test_telegram_sends_from_two_replicas_share_30_a_second(store: Store) -> None:
    async with store.open() as one, store.open() as two:
        limiters = [SharedRateLimiter(RateSlots(db), max_retries=0) for db in (one, two)]
        for limiter in limiters:
            await limiter.initialize()
        sent: list[float] = []

        async def send(*_: Any, **__: Any) -> bool:
            sent.append(time.monotonic())
            return True

        chats = itertools.count(1)
        await asyncio.gather(
            *(
                limiter.process_request(send, (), {}, "sendMessage", {"chat_id": next(chats)}, None)
                for limiter in limiters
                for _ in range(35)
            )
        )
        for limiter in limiters:
            await limiter.shutdown()
    assert len(sent) == 70
    assert most_in_a_window(sent, 0.95) <= 30
