"""What the engine tells people about tasks, and where videos go; the Telegram layer does both."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
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


class Sent(Enum):
    """How an upload of a video to the user ended."""

    SENT = "sent"
    # Refused because the user blocked the bot: it did not arrive; sent when they write again.
    TURNED_AWAY = "turned_away"
    # Refused or cut off: whether it arrived is unknown, so a link follows, never a second video.
    REFUSED = "refused"


class LinkReason(Enum):
    """Why the user gets a link instead of the video."""

    TOO_BIG = "too_big"
    UNSENT = "unsent"
    RESENT = "resent"


class Recipient(Protocol):
    """Where a finished video goes: the user's chat."""

    async def turned_away(self, task: Task) -> bool:
        """Whether the user blocked the bot."""

    async def ready(self, task: Task) -> bool:
        """Announce the upload; False if the user turned the bot away meanwhile."""

    async def send_video(self, task: Task, path: Path) -> Sent:
        """Send the video file."""

    async def send_link(
        self, task: Task, reason: LinkReason, url: str, size_mb: int, brief: bool = False
    ) -> bool:
        """Send a link to the video (`brief`: one that works 20 minutes); False if the user
        surely did not get it."""
