"""What the engine tells people about tasks; the Telegram layer (Messenger) says it."""

from __future__ import annotations

from typing import Protocol

from storage.models import Task


class Reporter(Protocol):
    """The engine's voice: each call reports one thing that happened to a task or backend."""

    async def show(self, task: Task) -> None:
        """The task moved to a new state."""

    async def progress(self, task: Task) -> None:
        """The task is still on its way (time so far, time left)."""

    async def show_waiting(self, task: Task, ahead: int) -> None:
        """The task waits in the local queue for the backend's create limit."""

    async def adopted(self, task: Task) -> None:
        """A task we could not tell had started did start after all."""

    async def alert_admins(
        self, backend: str, reason: str, detail: str | None, *, count: int = 0
    ) -> None:
        """The backend needs its owner (a refused key, no money, failures in a row)."""
