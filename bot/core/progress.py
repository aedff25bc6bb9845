"""How far one generation got, for whoever shows it (the command line's progress display)."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class Stage(StrEnum):
    """The steps of one generation, in the words a progress display shows."""

    UPLOADING = "uploading"
    CREATING = "creating the task"
    SETTLING = "checking whether the task started"
    QUEUED = "queued"
    GENERATING = "generating"
    WAITING = "waiting for the provider"
    DOWNLOADING = "downloading"


class Progress(Protocol):
    """Told each step of a generation as it happens."""

    def stage(self, stage: Stage, detail: str = "") -> None:
        """A step began, or its detail changed."""

    def transfer(self, done: int, total: int | None) -> None:
        """Bytes of the video downloaded so far, of `total` when known."""


class Unseen:
    """Progress nobody watches."""

    def stage(self, stage: Stage, detail: str = "") -> None:
        """Nothing to show."""

    def transfer(self, done: int, total: int | None) -> None:
        """Nothing to show."""
