"""The baseline: a deliberately naive tracker, one coroutine per task polling every 5 s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

from bot.core.failures import Failure
from bot.engine.gate import RateGate
from bot.engine.tracker import BATCH, MAX_SLEEP, Tracker
from bot.providers.base import ProviderState, ProviderTask
from bot.providers.errors import ProviderError
from storage.models import Task, TaskState

log = logging.getLogger(__name__)

# Every scheduled task, whenever it is due: the naive tracker takes new tasks at once.
FAR_FUTURE = 1e12
# Real-life seconds between one task's polls.
PERIOD = 5.0
# A backend's status-query limit is kept with this margin on its window (clocks differ).
STATUS_MARGIN = 1.1


class NaiveTracker(Tracker):
    """How the peers we know work: each task gets a coroutine that polls at a fixed interval.

    It keeps the real tracker's interface, honours callback wake-ups and delivers through the
    same Deliverer, so only the polling strategy differs. Like any client it keeps within the
    backend's status-query limit, where the provider states one.
    """

    interval: ClassVar[float] = PERIOD

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._followers: dict[int, asyncio.Task[None]] = {}
        self._nudges: dict[int, asyncio.Event] = {}
        self._early: set[int] = set()
        self._status_gates: dict[str, RateGate | None] = {}

    async def stop(self) -> None:
        """Stop taking tasks and cancel every follower; idempotent."""
        await super().stop()
        followers = list(self._followers.values())
        for job in followers:
            job.cancel()
        await asyncio.gather(*followers, return_exceptions=True)

    async def wake(self, task: Task) -> bool:
        """A callback arrived: the task's coroutine polls now instead of at its next tick."""
        nudge = self._nudges.get(task.id)
        if nudge is None:
            self._early.add(task.id)  # not followed yet: its first poll will be at once
            self.poke()
        else:
            nudge.set()
        return True

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            # New tasks arrive scheduled by the submitter; take them off the schedule and follow
            # (those being submitted or delivered are under their holder's lease).
            while found := await self._tasks.due(FAR_FUTURE, BATCH, leased=False):
                for task in found:
                    await self._tasks.unschedule(task.id)
                    self._take(task)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), MAX_SLEEP)

    def _take(self, task: Task) -> None:
        if task.id in self._followers:
            return
        if task.state in (TaskState.QUEUED, TaskState.RUNNING):
            work = self._follow(task)
        elif task.state is TaskState.SUCCEEDED:
            work = self._deliverer.deliver(task)
        else:
            return
        job = asyncio.create_task(self._guarded(task.id, work), name=f"naive-{task.id}")
        self._followers[task.id] = job

    async def _guarded(self, task_id: int, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            log.exception("task %s: naive follower crashed", task_id)
        finally:
            self._followers.pop(task_id, None)
            self._nudges.pop(task_id, None)

    async def _follow(self, task: Task) -> None:
        nudge = self._nudges.setdefault(task.id, asyncio.Event())
        if task.id in self._early:
            self._early.discard(task.id)
            nudge.set()
        deadline = (task.submitted_at or task.created_at) + self._task_timeout
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(nudge.wait(), self.interval)
            nudge.clear()
            remote = await self._naive_fetch(task)
            now = time.time()
            if remote is not None and remote.state is ProviderState.SUCCEEDED:
                done = await self._tasks.advance(
                    task.id, TaskState.SUCCEEDED, result_url=remote.video_url, finished_at=now
                )
                if done is not None:
                    await self._deliverer.deliver(done)
                return
            if remote is not None and remote.state is ProviderState.FAILED:
                await self._fail(task, Failure.GENERATION_FAILED, remote.error or remote.error_code)
                return
            if now >= deadline:
                await self._time_out(task)
                return
            if remote is None or remote.state is not ProviderState.RUNNING:
                continue
            if task.state is TaskState.QUEUED:
                running = await self._tasks.advance(task.id, TaskState.RUNNING)
                if running is not None:
                    task = running
                    await self._reporter.show(running)
            else:
                await self._reporter.progress(task)

    def _status_gate(self, backend: str) -> RateGate | None:
        """A queue in front of the backend's status-query limit (kie: 10 per second and key),
        where the bot's provider states one: a peer that broke it would only be refused."""
        if backend not in self._status_gates:
            provider = self._providers.get(backend)
            rate = getattr(type(provider), "status_rate", None)
            self._status_gates[backend] = (
                RateGate(int(rate[0]), float(rate[1]) * STATUS_MARGIN) if rate else None
            )
        return self._status_gates[backend]

    async def _naive_fetch(self, task: Task) -> ProviderTask | None:
        provider = self._providers.get(task.backend)
        if provider is None or task.provider_task_id is None:
            return None
        gate = self._status_gate(task.backend)
        if gate is not None:
            await gate.acquire()
        try:
            return await provider.fetch(task.provider_task_id)
        except ProviderError as exc:
            log.info("task %s: poll failed: %s", task.id, exc.reason)
            return None
