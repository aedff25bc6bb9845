"""The tracker's cost per tick against the number of tasks that are not due."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stats import percentile
from bot.engine.tracker import BATCH
from storage import Database, DraftRepository, GenerationOptions, TaskRepository, TaskState

OPTIONS = GenerationOptions(model="kie:kling-2.6/image-to-video", duration=5)
SIZES = (100, 1_000, 10_000)
ROUNDS = 300
DUE = 10  # tasks due at each tick (the work a tick really has)
WARM_UP = 20


@dataclass(frozen=True)
class TickCost:
    """What one tick of the tracker's loop costs with `waiting` tasks scheduled later."""

    waiting: int
    due: int
    p50_us: float
    p95_us: float

    @classmethod
    def of(cls, waiting: int, due: int, seconds: list[float]) -> TickCost:
        """The cost from timed ticks."""
        micros = [s * 1e6 for s in seconds]
        return cls(waiting, due, percentile(micros, 50), percentile(micros, 95))


async def _add(tasks: TaskRepository, drafts: DraftRepository, n: int, at: float) -> None:
    """Queue `n` tasks at the provider with their next poll at `at`."""
    for _ in range(n):
        draft = await drafts.create(
            user_id=1,
            chat_id=1,
            source_message_id=1,
            image_file_id="file",
            prompt="a quiet street",
            options=OPTIONS,
            lang="en",
        )
        task = await tasks.claim_draft(draft.id, "secret", 1)
        assert not isinstance(task, str)
        await tasks.advance(
            task.id,
            TaskState.QUEUED,
            provider_task_id=f"remote-{task.id}",
            submitted_at=at,
            next_poll_at=at,
        )


async def _tick(tasks: TaskRepository, now: float) -> float:
    """One tick as `Tracker._run` does it: the due tasks, then when the next one is due."""
    start = time.perf_counter()
    await tasks.due(now, BATCH)
    await tasks.next_due_after(now)
    return time.perf_counter() - start


async def tick_costs(sizes: tuple[int, ...] = SIZES, rounds: int = ROUNDS) -> list[TickCost]:
    """Time ticks with 100, 1,000 and 10,000 waiting tasks (and 0 or 10 due ones).

    Each size has its own database, and the ticks take turns across them, so that every size
    sees the same machine. The event loop and SQLite's threads share one CPU meanwhile: a
    wake-up across CPUs costs this VM 0.5 ms at random, which would hide the query's cost.
    """
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # threads started from now on inherit it
    try:
        return await _interleaved(sizes, rounds)
    finally:
        os.sched_setaffinity(0, cpus)


async def _interleaved(sizes: tuple[int, ...], rounds: int) -> list[TickCost]:
    now = time.time()
    # A tick just before the due ones finds none; one at `now` finds DUE.
    moments = ((now - 2, 0), (now, DUE))
    timings: dict[tuple[int, int], list[float]] = {
        (s, due): [] for s in sizes for _, due in moments
    }
    with tempfile.TemporaryDirectory(prefix="kling-bench-tick-") as folder:
        async with contextlib.AsyncExitStack() as stack:
            repos = []
            for size in sizes:
                db = await stack.enter_async_context(Database.open(Path(folder) / f"{size}.db"))
                tasks, drafts = TaskRepository(db), DraftRepository(db)
                await _add(tasks, drafts, DUE, now - 1)  # returned and decoded by every tick
                await _add(tasks, drafts, size, now + 3600)
                repos.append((size, tasks))
            for turn in range(rounds + WARM_UP):
                for size, tasks in repos:
                    for moment, due in moments:
                        spent = await _tick(tasks, moment)
                        if turn >= WARM_UP:
                            timings[(size, due)].append(spent)
    return [TickCost.of(size, due, spent) for (size, due), spent in timings.items()]
