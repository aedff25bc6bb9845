"""Rate limits shared by processes on one database: never more than the limit in a window."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

import bot.chat.limiter as limiter_module
from bot.chat.limiter import FloodLimiter
from bot.engine.gate import SharedRateGate, shared_gates
from storage import Database
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
        takes = [
            RateSlots(db).take("kie:create", 5, 60.0, hold=0.0)
            for db in (one, two)
            for _ in range(10)
        ]
        taken = await asyncio.gather(*takes)
    assert sum(1 for slot in taken if slot.slot is not None) == 5
    assert all(0 < slot.wait <= 60 for slot in taken if slot.slot is None)


async def test_an_open_slot_counts_until_a_window_after_its_answer(db: Database) -> None:
    slots = RateSlots(db)
    first = await slots.take("kie:create", 2, 0.5, hold=60.0)
    second = await slots.take("kie:create", 2, 0.5, hold=60.0)
    assert first.slot is not None and second.slot is not None
    # Both calls still under way: the window stays full however long they take.
    await asyncio.sleep(0.6)
    full = await slots.take("kie:create", 2, 0.5, hold=60.0)
    assert full.slot is None and 0 < full.wait <= 0.5
    await slots.answered(first.slot)
    # Answered now: it counts for a whole window more, not from when it was let through.
    after = await slots.take("kie:create", 2, 0.5, hold=60.0)
    assert after.slot is None and 0.4 < after.wait <= 0.5
    await asyncio.sleep(after.wait)
    assert (await slots.take("kie:create", 2, 0.5, hold=60.0)).slot is not None


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


async def test_calls_slow_to_arrive_never_exceed_the_limit_at_the_other_end(
    store: Store,
) -> None:
    """kie counts a create when it arrives: however long each took to get there and back,
    no window of kie's clock holds more than the limit, from two processes together."""
    limit, window = 4, 0.2
    travel = random.Random(14)
    arrived: list[float] = []

    async def call(gate: SharedRateGate) -> None:
        async with gate.slot():
            await asyncio.sleep(travel.uniform(0, 0.1))  # on the way
            arrived.append(time.monotonic())
            await asyncio.sleep(travel.uniform(0, 0.1))  # the answer on its way back

    async with store.open() as one, store.open() as two:
        gates = [SharedRateGate(RateSlots(db), "kie:create", limit, window) for db in (one, two)]
        await asyncio.gather(*(call(gate) for gate in gates for _ in range(8)))
    assert len(arrived) == 16
    assert most_in_a_window(arrived, window) <= limit


async def test_telegram_sends_from_two_replicas_share_30_a_second(store: Store) -> None:
    async with store.open() as one, store.open() as two:
        limiters = [FloodLimiter(shared_gates(RateSlots(db)), max_retries=0) for db in (one, two)]
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
                for _ in range(20)
            )
        )
        for limiter in limiters:
            await limiter.shutdown()
    assert len(sent) == 40
    assert most_in_a_window(sent, 1.0) <= 30


async def test_a_group_gets_its_limit_from_two_replicas_together(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limiter_module, "GROUP_RATE", (3, 0.4))
    async with store.open() as one, store.open() as two:
        limiters = [FloodLimiter(shared_gates(RateSlots(db)), max_retries=0) for db in (one, two)]
        sent: list[tuple[int, float]] = []

        async def send(*_: Any, chat: int, **__: Any) -> bool:
            sent.append((chat, time.monotonic()))
            return True

        def to(chat: int, limiter: FloodLimiter) -> Any:
            return limiter.process_request(
                send, (), {"chat": chat}, "sendMessage", {"chat_id": chat}, None
            )

        # Five messages to one group from each replica, and to a private chat meanwhile.
        await asyncio.gather(
            *(to(-100, limiter) for limiter in limiters for _ in range(5)),
            *(to(7, limiter) for limiter in limiters for _ in range(5)),
        )
    group = [at for chat, at in sent if chat == -100]
    private = [at for chat, at in sent if chat == 7]
    assert len(group) == 10 and len(private) == 10
    assert most_in_a_window(group, 0.4) <= 3
    # A private chat has no such limit: not held up behind the group.
    assert max(private) - min(private) < 0.3


async def test_slots_of_gates_no_longer_used_are_forgotten(db: Database) -> None:
    slots = RateSlots(db)
    old = await slots.take("telegram:group:-5", 20, 60.0, hold=0.0)
    assert old.slot is not None
    await db.execute("UPDATE rate_slots SET at = at - 7200 WHERE id = ?", (old.slot,))
    await RateSlots(db).take("kie:create", 20, 11.0, hold=0.0)  # a later take sweeps them
    rows = await db.fetchall("SELECT gate FROM rate_slots")
    assert [row[0] for row in rows] == ["kie:create"]
