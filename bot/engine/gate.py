"""Queues in front of rate limits (kie: 20 creates per 10 s): in one process, or shared by all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from storage.rates import RateSlots

log = logging.getLogger(__name__)

Queued = Callable[[int], Awaitable[None]]
# A call counts as unanswered at most this long (a process killed mid-call never answers):
# longer than the longest request, a video upload (bot/chat/upload.py allows it 300 s).
OPEN_AT_MOST = 330.0


class RateGate:
    """Lets at most `limit` calls through per sliding `window` seconds, first come first served.

    A call counts from the moment it is let through until `window` seconds after its answer:
    the other side counts it when it arrives, somewhere in between, so the limit holds by its
    clock however long the request took to get there.
    """

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._answered: deque[float] = deque()  # when recent calls ended, oldest first
        self._open = 0  # calls let through and not answered yet
        self._an_answer = asyncio.Event()
        self._turn = asyncio.Lock()  # asyncio.Lock wakes waiters in FIFO order
        self._waiting = 0

    def _wait_needed(self) -> float | None:
        """0 when a call may go now; else seconds to wait, or None until a call ends."""
        now = self._clock()
        while self._answered and now - self._answered[0] >= self._window:
            self._answered.popleft()
        if len(self._answered) + self._open < self._limit:
            return 0.0
        if not self._answered:
            return None
        return self._answered[0] + self._window - now

    @property
    def waiting(self) -> int:
        """How many calls wait for a slot."""
        return self._waiting

    def idle(self) -> bool:
        """Whether no call waits, is under way or still counts in the window."""
        self._wait_needed()  # forgets the calls whose window has ended
        return not (self._waiting or self._open or self._answered)

    def busy(self) -> bool:
        """Whether a call made now would have to wait."""
        return self._waiting > 0 or self._turn.locked() or self._wait_needed() != 0

    @asynccontextmanager
    async def slot(self, on_queued: Queued | None = None) -> AsyncIterator[None]:
        """Wait for room, then make the call inside; `on_queued(calls ahead)` is awaited
        first if there is a wait."""
        await self._enter(on_queued)
        try:
            yield
        finally:
            self._open -= 1
            self._answered.append(self._clock())
            self._an_answer.set()

    async def acquire(self, on_queued: Queued | None = None) -> None:
        """Room for a call made at once, counted from now (`slot` counts until its answer)."""
        async with self.slot(on_queued):
            pass

    async def _enter(self, on_queued: Queued | None) -> None:
        if on_queued is not None and self.busy():
            await on_queued(self._waiting)
        self._waiting += 1
        try:
            async with self._turn:
                while (delay := self._wait_needed()) != 0:
                    if delay is None:
                        self._an_answer.clear()
                        await self._an_answer.wait()
                    else:
                        await asyncio.sleep(delay)
                self._open += 1
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

    @asynccontextmanager
    async def slot(self, on_queued: Queued | None = None) -> AsyncIterator[None]:
        """Wait for room here, then for a slot shared with the other processes."""
        async with super().slot(on_queued):
            async with self._shared_turn:
                taken = await take_slot(
                    self._slots, self._name, self._limit, self._window, OPEN_AT_MOST
                )
            try:
                yield
            finally:
                try:
                    await self._slots.answered(taken)
                except Exception as exc:
                    # The slot then counts until OPEN_AT_MOST: slower, never over the limit.
                    log.warning("rate slot %s not closed: %s", taken, type(exc).__name__)


async def take_slot(slots: RateSlots, gate: str, limit: int, window: float, hold: float) -> int:
    """Take a slot of `gate` open for at most `hold` s, waiting while the window is full."""
    while True:
        taken = await slots.take(gate, limit, window, hold=hold)
        if taken.slot is not None:
            return taken.slot
        await asyncio.sleep(taken.wait)


GateMaker = Callable[[str, int, float], RateGate]


def local_gates(name: str, limit: int, window: float) -> RateGate:
    """A gate for one process (SQLite: the only one)."""
    return RateGate(limit, window)


def shared_gates(slots: RateSlots) -> GateMaker:
    """Gates shared through the database by every replica."""

    def make(name: str, limit: int, window: float) -> RateGate:
        return SharedRateGate(slots, name, limit, window)

    return make
