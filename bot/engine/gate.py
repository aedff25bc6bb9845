"""Queues in front of rate limits (kie: 20 creates per 10 s): in one process, or shared by all."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

from storage.rates import RateSlots


class RateGate:
    """Lets at most `limit` calls through per sliding `window` seconds, first come first served."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._recent: deque[float] = deque()
        self._turn = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        self._waiting = 0

    def _wait_needed(self) -> float:
        now = self._clock()
        while self._recent and now - self._recent[0] >= self._window:
            self._recent.popleft()
        if len(self._recent) < self._limit:
            return 0.0
        return self._recent[0] + self._window - now

    @property
    def waiting(self) -> int:
        """How many calls wait for a slot."""
        return self._waiting

    def busy(self) -> bool:
        """Whether a call made now would have to wait."""
        return self._waiting > 0 or self._turn.locked() or self._wait_needed() > 0

    async def acquire(self, on_queued: Callable[[int], Awaitable[None]] | None = None) -> None:
        """Wait for a slot; `on_queued(calls ahead)` is awaited first if there is a wait."""
        if on_queued is not None and self.busy():
            await on_queued(self._waiting)
        self._waiting += 1
        try:
            async with self._turn:
                while (delay := self._wait_needed()) > 0:  # noqa: ASYNC110 - a timed wait
                    await asyncio.sleep(delay)
                self._recent.append(self._clock())
        finally:
            self._waiting -= 1


class SharedRateGate(RateGate):
    """A RateGate whose limit holds across every process on the database (several replicas).

    The local queue keeps this process's callers in order and tells them their place; a slot
    is then taken in the database, waiting while other processes have the window full.
    """

    def __init__(self, slots: RateSlots, name: str, limit: int, window: float) -> None:
        super().__init__(limit, window)
        self._slots = slots
        self._name = name
        # One caller of this process at a time asks the database: the others wait here, in
        # order, instead of all asking again each time a slot frees (lock contention).
        self._shared_turn = asyncio.Lock()

    async def acquire(self, on_queued: Callable[[int], Awaitable[None]] | None = None) -> None:
        """Wait for a slot here, then for one shared with the other processes."""
        await super().acquire(on_queued)
        async with self._shared_turn:
            await wait_for_slot(self._slots, self._name, self._limit, self._window)


async def wait_for_slot(slots: RateSlots, gate: str, limit: int, window: float) -> None:
    """Take a slot of `gate`, waiting while the window is full."""
    while (delay := await slots.take(gate, limit, window)) > 0:  # noqa: ASYNC110 - timed wait
        await asyncio.sleep(delay)


GateMaker = Callable[[str, int, float], RateGate]


def local_gates(name: str, limit: int, window: float) -> RateGate:
    """A gate for one process (SQLite: the only one)."""
    return RateGate(limit, window)


def shared_gates(slots: RateSlots) -> GateMaker:
    """Gates shared through the database by every replica."""

    def make(name: str, limit: int, window: float) -> RateGate:
        return SharedRateGate(slots, name, limit, window)

    return make
