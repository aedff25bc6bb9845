"""Wait for one task: look at it when its pacing says, until it ends or patience runs out."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from bot.core.progress import Progress, Stage
from bot.providers.base import Provider, ProviderState, ProviderTask
from bot.providers.errors import ProviderError


class Pacing(Protocol):
    """When to look again (the engine's learned Schedule is one)."""

    def next_delay(self, age: float) -> float:
        """Seconds until the next look, after a look at `age` seconds."""


class GenerationFailed(Exception):
    """The provider ended the task without a video; `detail` is its reason, if it gave one."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class OutOfPatience(Exception):
    """The task had not ended when patience ran out; it may still finish at the provider."""

    def __init__(self, patience: float) -> None:
        super().__init__(patience)
        self.patience = patience


async def wait_for_video(
    provider: Provider, task_id: str, pacing: Pacing, patience: float, progress: Progress
) -> ProviderTask:
    """The ended task with its video URL; GenerationFailed, OutOfPatience, or a lasting error.

    Passing refusals (rate limits, outages) are shown and waited out; any other error of a
    look ends the wait.
    """
    started = time.monotonic()
    progress.stage(Stage.QUEUED, f"task {task_id}")
    while True:
        age = time.monotonic() - started
        if age >= patience:
            raise OutOfPatience(patience)
        await asyncio.sleep(min(pacing.next_delay(age), patience - age))
        try:
            remote = await provider.fetch(task_id)
        except ProviderError as exc:
            if not exc.retryable:
                raise
            progress.stage(Stage.WAITING, exc.reason.summary)
            continue
        if remote.state is ProviderState.FAILED:
            raise GenerationFailed(remote.error or remote.error_code or "no reason given")
        if remote.state is ProviderState.SUCCEEDED:
            return remote  # providers report success only with a video URL
        running = remote.state is ProviderState.RUNNING
        progress.stage(Stage.GENERATING if running else Stage.QUEUED, f"task {task_id}")
