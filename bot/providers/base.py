"""The provider interface shared by every backend, and the models it speaks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class ProviderState(StrEnum):
    """The common state model of every backend."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ImageFile(BaseModel):
    """An image's bytes, ready to upload."""

    model_config = ConfigDict(frozen=True)

    data: bytes
    mime_type: str
    file_name: str
    width: int
    height: int


class VideoRequest(BaseModel):
    """One image-to-video generation, in provider-neutral terms."""

    model_config = ConfigDict(frozen=True)

    model: str
    prompt: str
    image: ImageFile
    duration: int
    sound: bool | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    callback_url: str | None = None
    external_id: str


class ProviderTask(BaseModel):
    """What a provider says about one task."""

    id: str
    state: ProviderState
    video_url: str | None = None
    error: str | None = None
    error_code: str | None = None


class Provider(ABC):
    """A video backend: create a task, fetch its state, read its callbacks."""

    name: str

    @abstractmethod
    async def create(self, request: VideoRequest) -> str:
        """Upload what is needed, start the task, and return the provider's task id."""

    @abstractmethod
    async def fetch(self, task_id: str) -> ProviderTask:
        """Read the task's current state from the provider."""

    @abstractmethod
    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Check a callback and return the task id it is about; raise CallbackRejectedError."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the HTTP client."""
