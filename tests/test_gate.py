"""The local rate gate in front of provider creates."""

from __future__ import annotations

import asyncio

from bot.engine.gate import RateGate


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
