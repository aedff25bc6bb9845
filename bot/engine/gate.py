"""A local queue in front of a backend's create rate limit (kie: 20 per 10 s, with a margin)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


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
