"""The provider interface shared by every backend, and the models it speaks."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DYNAMIC_MASKS = 6
MAX_TRAJECTORY_POINTS = 77
MAX_REFERENCE_IMAGES = 4
# A span a provider reports beyond this is a broken clock, not a generation.
MAX_TOOK = 2 * 24 * 3600.0


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


CameraType = Literal["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]
CameraAxis = Literal["horizontal", "vertical", "pan", "tilt", "roll", "zoom"]


class CameraMove(BaseModel):
    """A camera movement: a preset type, or `simple` with one axis moved by -10…10."""

    model_config = ConfigDict(frozen=True)

    type: CameraType
    axis: CameraAxis | None = None
    amount: int = Field(default=0, ge=-10, le=10)

    @model_validator(mode="after")
    def _one_axis_for_simple(self) -> Self:
        if (self.type == "simple") != (self.axis is not None and self.amount != 0):
            raise ValueError("a simple move needs one axis with a non-zero amount; presets none")
        return self


class TrajectoryPoint(BaseModel):
    """One point of a motion-brush path, origin at the image's bottom-left."""

    model_config = ConfigDict(frozen=True)

    x: int = Field(ge=0)
    y: int = Field(ge=0)


class DynamicMask(BaseModel):
    """A motion-brush area and the path it moves along."""

    model_config = ConfigDict(frozen=True)

    mask: ImageFile
    trajectories: tuple[TrajectoryPoint, ...] = Field(
        min_length=2, max_length=MAX_TRAJECTORY_POINTS
    )


class Shot(BaseModel):
    """One shot of a multi-shot video: what happens, for how long."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    duration: int = Field(ge=1)


def split_duration(total: int, count: int) -> list[int]:
    """`total` seconds over `count` shots, as evenly as whole seconds go, the first longer."""
    base, extra = divmod(total, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def shots_of(prompts: tuple[str, ...], total: int) -> tuple[Shot, ...]:
    """One shot a prompt, their lengths split to add up to `total` seconds."""
    lengths = split_duration(total, len(prompts)) if prompts else []
    return tuple(
        Shot(prompt=text, duration=seconds) for text, seconds in zip(prompts, lengths, strict=True)
    )


class VideoRequest(BaseModel):
    """One image-to-video generation, in provider-neutral terms."""

    model_config = ConfigDict(frozen=True)

    model: str
    prompt: str
    image: ImageFile
    duration: int
    mode: str | None = None
    sound: bool | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = Field(default=None, ge=0, le=1)
    tail_image: ImageFile | None = None
    reference_images: tuple[ImageFile, ...] = ()
    camera: CameraMove | None = None
    static_mask: ImageFile | None = None
    dynamic_masks: tuple[DynamicMask, ...] = Field(default=(), max_length=MAX_DYNAMIC_MASKS)
    callback_url: str | None = None
    external_id: str
    # Multi-shot: the shots, whose lengths add up to `duration`; () for one shot.
    shots: tuple[Shot, ...] = ()
    # The frame's shape where the model takes one; None: the nearest to the photo's.
    aspect: Literal["16:9", "9:16", "1:1"] | None = None

    @model_validator(mode="after")
    def _compatible(self) -> Self:
        brush = self.static_mask is not None or bool(self.dynamic_masks)
        controls = [self.tail_image is not None, self.camera is not None, brush]
        if sum(controls) > 1:
            raise ValueError("end frame, camera move and motion brush cannot be combined")
        if self.reference_images and (any(controls)):
            raise ValueError("reference images take no end frame, camera move or motion brush")
        if self.reference_images and not 2 <= len(self.reference_images) <= MAX_REFERENCE_IMAGES:
            raise ValueError(f"reference images: 2 to {MAX_REFERENCE_IMAGES}")
        return self

    @property
    def aspect_ratio(self) -> str:
        """The shape asked for, else the nearest of 16:9, 9:16 and 1:1 to the first image's."""
        if self.aspect is not None:
            return self.aspect
        ratio = self.image.width / max(1, self.image.height)
        choices = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
        return min(choices, key=lambda name: abs(choices[name] - ratio))


class ProviderTask(BaseModel):
    """What a provider says about one task."""

    id: str
    state: ProviderState
    video_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    # The callback URL the task was created with, where the provider echoes it (kie's `param`).
    callback_url: str | None = None
    # Seconds from the provider's create to the task's end, by the provider's own clock; only
    # for ended tasks, None when it gives no plausible figure.
    took: float | None = None


def took_seconds(milliseconds: Any) -> float | None:
    """A span the provider reports in ms, in seconds; None unless above zero and at most 2 days."""
    if not isinstance(milliseconds, int | float) or isinstance(milliseconds, bool):
        return None
    seconds = milliseconds / 1000
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_TOOK else None


def took_between(start_ms: Any, end_ms: Any) -> float | None:
    """The span between two ms timestamps, in seconds; None unless both are numbers and sane."""
    numbers = all(
        isinstance(value, int | float) and not isinstance(value, bool)
        for value in (start_ms, end_ms)
    )
    return took_seconds(end_ms - start_ms) if numbers else None


@dataclass(frozen=True)
class PreparedTask:
    """A create call ready to send: the free work (uploads, encoding) is done."""

    route: str
    payload: dict[str, Any]


class Provider(ABC):
    """A video backend: create a task, fetch its state, read its callbacks."""

    name: str
    image_types: ClassVar[tuple[str, ...]] = ("image/jpeg", "image/png", "image/webp")
    # (requests, seconds): how many creates the backend takes per window, if it says.
    create_rate: ClassVar[tuple[int, float] | None] = None
    # (requests, seconds): how many status queries it takes per window and key, if known.
    status_rate: ClassVar[tuple[int, float] | None] = None
    # Whether `find` can tell if a create whose answer was lost went through.
    can_find: ClassVar[bool] = False
    # Whether the backend calls the task's callback_url when it ends.
    sends_callbacks: bool = True
    # Seconds a result's own link is documented to work, and the video itself is kept (None:
    # not documented): past the first a refused link is dead, past the second so is the video.
    link_life: float | None = None
    results_kept: float | None = None

    @property
    def local_roots(self) -> tuple[Path, ...]:
        """Folders holding this backend's `file://` results (only the local preview has any)."""
        return ()

    @abstractmethod
    async def prepare(self, request: VideoRequest) -> PreparedTask:
        """Do the free part of a create (upload images, encode them); safe to repeat."""

    @abstractmethod
    async def start(self, prepared: PreparedTask) -> str:
        """Make the paid call; return the provider's task id."""

    async def create(self, request: VideoRequest) -> str:
        """Prepare and start a task in one go."""
        return await self.start(await self.prepare(request))

    async def balance(self) -> str:
        """What is left on the account, in a few words (credits, resource packs)."""
        raise NotImplementedError(f"{self.name} has no balance endpoint")

    async def find(self, external_id: str) -> str | None:
        """The task created under `external_id`; None only if the provider proves there is none.

        Raises LookupInconclusiveError when it cannot tell (see `can_find`).
        """
        raise NotImplementedError(f"{self.name} cannot look tasks up by our id")

    async def fresh_url(self, url: str) -> str | None:
        """A new link to a result whose own `url` stopped working; None if there is no way.

        Raises NotFoundError when the provider says the video is gone.
        """
        return None

    @abstractmethod
    async def fetch(self, task_id: str) -> ProviderTask:
        """Read the task's current state from the provider."""

    async def fetch_many(self, task_ids: Sequence[str]) -> Mapping[str, ProviderTask] | None:
        """What one batch query says of `task_ids` (one left out: fetch it); None: there is none."""
        return None

    @abstractmethod
    def parse_callback(self, headers: Mapping[str, str], body: bytes, now: float) -> str:
        """Check a callback and return the task id it is about; raise CallbackRejectedError."""

    def is_same_task(self, provider_task_id: str, reported: str) -> bool:
        """Whether a callback's task id names the task we stored as `provider_task_id`."""
        return provider_task_id == reported

    @abstractmethod
    async def aclose(self) -> None:
        """Release the HTTP client."""
