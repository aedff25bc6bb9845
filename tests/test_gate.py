"""The local rate gate in front of provider creates."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import Any

import pytest

import bot.chat.limiter as limiter_module
from bot.chat.limiter import FloodLimiter
from bot.engine.gate import RateGate, local_gates
from bot.providers.kie import KieProvider

# kie's documented limit, by kie's clock: at most 20 new tasks in any 10 s.
KIE_LIMIT, KIE_WINDOW = 20, 10.0
# How far apart our clock and kie's may see one create: network and scheduling delay.
JITTER = 0.5


async def test_gate_spaces_calls_to_the_window_in_arrival_order() -> None:
    gate = RateGate(limit=3, window=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    passed: list[tuple[int, float]] = []
    queued: list[tuple[int, int]] = []

    async def call(n: int) -> None:
        async def note(ahead: int) -> None:
            queued.append((n, ahead))

        await gate.acquire(note)
        passed.append((n, loop.time() - start))

    await asyncio.gather(*(call(n) for n in range(7)))
    assert [n for n, _ in passed] == list(range(7))
    times = [at for _, at in passed]
    assert all(at < 0.1 for at in times[:3])
    assert all(0.19 <= at < 0.35 for at in times[3:6])
    assert times[6] >= 0.39
    # Every call past the first three was told it was queued, and how many were ahead.
    assert [n for n, _ in queued] == [3, 4, 5, 6]
    assert [ahead for _, ahead in queued] == [0, 1, 2, 3]
    # Any window of 0.2 s holds at most three calls.
    for i in range(len(times) - 3):
        assert times[i + 3] - times[i] >= 0.19


async def test_gate_is_free_when_idle() -> None:
    gate = RateGate(limit=1, window=10.0)
    assert not gate.busy()
    await gate.acquire()
    assert gate.busy() and gate.waiting == 0


class RecordingClock:
    """time.monotonic, remembering its last reading: the moment the gate counted a call."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self) -> float:
        self.last = time.monotonic()
        return self.last


def most_in_a_provider_window(sent: list[float]) -> int:
    """The most creates kie can count in one window when each may arrive ±JITTER off."""
    most = 0
    for i, first in enumerate(sent):
        # The worst case: `first` arrives JITTER late, later ones JITTER early.
        most = max(most, sum(1 for at in sent[i:] if (at - JITTER) - (first + JITTER) < KIE_WINDOW))
    return most


async def test_kie_gate_never_lets_kie_see_more_than_20_creates_in_10_s() -> None:
    assert KieProvider.create_rate is not None
    limit, window = KieProvider.create_rate
    scale = 0.02  # kie's 10 s pass in 0.2 s here
    clock = RecordingClock()
    gate = RateGate(limit, window * scale, clock)
    sent: list[float] = []

    async def create(arrives: float) -> None:
        await asyncio.sleep(arrives * scale)
        await gate.acquire()
        # No other coroutine runs between the gate's count and its return.
        sent.append(clock.last / scale)

    # Bursts at the start and later, and a trickle in between.
    arrivals = [0.0] * 30 + [3.0 + 0.7 * n for n in range(15)] + [25.0] * 25
    await asyncio.gather(*(create(at) for at in arrivals))
    assert len(sent) == len(arrivals)
    sent = [at - sent[0] for at in sent]
    assert sent == sorted(sent)
    assert most_in_a_provider_window(sent) <= KIE_LIMIT


def most_in_a_window(moments: list[float], window: float) -> int:
    """The most moments inside any `window` seconds."""
    moments = sorted(moments)
    return max(
        sum(1 for later in moments[i:] if later - first < window) for i, first in enumerate(moments)
    )


async def test_calls_slow_to_arrive_never_exceed_the_limit_at_the_other_end() -> None:
    """The other side counts a call when it arrives: however long the way there and back, no
    window of its clock holds more than the limit."""
    gate = RateGate(limit=4, window=0.2)
    travel = random.Random(14)
    arrived: list[float] = []

    async def call() -> None:
        async with gate.slot():
            await asyncio.sleep(travel.uniform(0, 0.1))
            arrived.append(time.monotonic())
            await asyncio.sleep(travel.uniform(0, 0.1))

    await asyncio.gather(*(call() for _ in range(16)))
    assert len(arrived) == 16
    assert most_in_a_window(arrived, 0.2) <= 4


async def test_one_process_sends_telegram_at_most_30_requests_in_any_second() -> None:
    """PTB's own overall limit is a bucket: 30 at once, then 30 more within the same second."""
    limiter = FloodLimiter(local_gates, max_retries=0)
    await limiter.initialize()
    travel = random.Random(30)
    arrived: list[float] = []

    async def send(*_: Any, **__: Any) -> bool:
        await asyncio.sleep(travel.uniform(0, 0.05))
        arrived.append(time.monotonic())
        return True

    chats = itertools.count(1)
    try:
        await asyncio.gather(
            *(
                limiter.process_request(send, (), {}, "sendMessage", {"chat_id": next(chats)}, None)
                for _ in range(45)
            )
        )
    finally:
        await limiter.shutdown()
    assert len(arrived) == 45
    assert most_in_a_window(arrived, 1.0) <= 30


async def test_a_busy_groups_limit_is_kept_when_idle_groups_are_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limiter_module, "GROUP_RATE", (2, 0.4))
    monkeypatch.setattr(limiter_module, "KEPT_GROUP_GATES", 2)
    limiter = FloodLimiter(local_gates, max_retries=0)
    sent: list[tuple[int, float]] = []

    async def send(*_: Any, chat: int, **__: Any) -> bool:
        sent.append((chat, time.monotonic()))
        return True

    async def to(chat: int) -> None:
        await limiter.process_request(
            send, (), {"chat": chat}, "sendMessage", {"chat_id": chat}, None
        )

    await to(-1)
    await to(-1)
    for chat in range(-2, -6, -1):  # more groups than are kept
        await to(chat)
    await to(-1)  # its window still holds two: it waits
    first = [at for chat, at in sent if chat == -1]
    assert first[2] - first[0] >= 0.35
