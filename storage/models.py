"""Rows as typed models."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from storage.database import Row


class DraftState(StrEnum):
    """Where a draft stands: waiting for a prompt, editable, turned into a task, or dropped."""

    AWAITING_PROMPT = "awaiting_prompt"
    OPEN = "open"
    SUBMITTED = "submitted"
    CANCELLED = "cancelled"


class TaskState(StrEnum):
    """A task's life; states only move forward (see `TaskState.rank`)."""

    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Position in the forward-only order; the two end states share the last place."""
        return _RANK[self]

    @property
    def finished(self) -> bool:
        """True once nothing more will happen to the task."""
        return self in (TaskState.DELIVERED, TaskState.FAILED)


_RANK = {
    TaskState.SUBMITTING: 0,
    TaskState.QUEUED: 1,
    TaskState.RUNNING: 2,
    TaskState.SUCCEEDED: 3,
    TaskState.DELIVERING: 4,
    TaskState.DELIVERED: 5,
    TaskState.FAILED: 5,
}


class ImageUse(StrEnum):
    """What the photos of an album are for."""

    SINGLE = "single"
    END_FRAME = "end_frame"
    REFERENCES = "references"


class GenerationOptions(BaseModel):
    """What the user chose for one video."""

    model_config = ConfigDict(frozen=True)

    model: str
    duration: int = 5
    sound: bool = False
    mode: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    camera: str | None = None
    images: ImageUse = ImageUse.SINGLE
    # The prompt's shots (see bot.caption), and whether they go as one multi-shot video.
    shots: tuple[str, ...] = ()
    multi_shot: bool = False


class AlbumImage(BaseModel):
    """A further photo of an album: its message and file."""

    model_config = ConfigDict(frozen=True)

    message_id: int
    file_id: str


class _Row(BaseModel):
    @classmethod
    def from_row(cls, row: Row) -> Self:
        """Build from a row, decoding the JSON `options` column."""
        data: dict[str, Any] = dict(row)
        for column in ("options", "extra_images"):
            if isinstance(data.get(column), str):
                data[column] = json.loads(data[column])
        return cls.model_validate(data)


class Draft(_Row):
    """A photo and prompt with options, shown to its owner as an editable message."""

    id: int
    user_id: int
    chat_id: int
    source_message_id: int
    message_id: int | None
    image_file_id: str
    extra_images: list[AlbumImage] = []
    media_group_id: str | None = None
    # An album's draft: when to show it (its photos have stopped arriving); None once shown.
    show_at: float | None = None
    prompt: str | None
    options: GenerationOptions
    lang: str
    state: DraftState
    created_at: float
    updated_at: float

    @property
    def image_count(self) -> int:
        """How many photos the draft has."""
        return 1 + len(self.extra_images)


class Task(_Row):
    """One paid generation, from the moment before the provider is called to delivery."""

    id: int
    draft_id: int | None
    user_id: int
    chat_id: int
    source_message_id: int
    status_message_id: int | None
    image_file_id: str
    extra_images: list[AlbumImage] = []
    prompt: str
    options: GenerationOptions
    lang: str
    state: TaskState
    provider_task_id: str | None
    callback_secret: str
    result_url: str | None
    error: str | None
    error_detail: str | None
    polls: int
    next_poll_at: float | None
    create_started_at: float | None = None
    retried_as: int | None = None
    sending_at: float | None = None
    # When the current round of delivery began: claimed, or its chat wrote again after
    # blocking the bot (a day of retries counts from it).
    delivery_began_at: float | None = None
    # Who is submitting or delivering the task (a claim's token); its lease ends at next_poll_at.
    lease_owner: str | None = None
    # When a callback from the provider named the task (then polls are no longer a safety net).
    callback_at: float | None = None
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    delivered_at: float | None
    updated_at: float

    @property
    def backend(self) -> str:
        """The backend part of the model id (`kie` of `kie:kling/v2-1-pro`)."""
        return self.options.model.split(":", 1)[0]


class UserSettings(BaseModel):
    """A user's remembered choices."""

    user_id: int
    language: str | None = None
    options: GenerationOptions | None = None
