"""The provider-neutral request for one video: what was chosen, as far as the model takes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from bot.providers.base import DynamicMask, ImageFile, VideoRequest, shots_of
from bot.providers.camera import PRESETS
from bot.providers.catalogue import ModelSpec, request_refusal

Aspect = Literal["16:9", "9:16", "1:1"]


@dataclass(frozen=True)
class Choices:
    """What was chosen for one video, by a user's buttons or the command line's flags."""

    prompt: str
    duration: int
    mode: str | None = None
    sound: bool = False
    negative_prompt: str | None = None
    cfg_scale: float | None = None
    camera: str | None = None
    # The prompt's shots; () for one shot.
    shots: tuple[str, ...] = ()
    aspect: Aspect | None = None


@dataclass(frozen=True)
class Images:
    """The prepared images of one video and what each is for."""

    photo: ImageFile
    end_frame: ImageFile | None = None
    # Every photo (the first too) when they are used as references of one scene.
    references: tuple[ImageFile, ...] = ()
    static_mask: ImageFile | None = None
    dynamic_masks: tuple[DynamicMask, ...] = ()


class RequestRefused(Exception):
    """The request cannot be made, or its model's map refuses it: nothing is paid."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def build_request(
    spec: ModelSpec,
    choices: Choices,
    images: Images,
    *,
    external_id: str,
    callback_url: str | None = None,
) -> VideoRequest:
    """The request for `spec` with only what it takes; RequestRefused if it cannot go."""
    end_frame = images.end_frame if spec.end_frame else None
    references = images.references if spec.multi_image else ()
    brush = spec.motion_brush is not None
    camera = choices.camera if spec.camera and not (end_frame or references) else None
    shots = choices.shots if spec.multi_shot is not None else ()
    try:
        request = VideoRequest(
            model=spec.name,
            prompt=choices.prompt,
            image=images.photo,
            duration=choices.duration,
            mode=choices.mode if choices.mode in spec.modes else None,
            sound=choices.sound if spec.sound else None,
            negative_prompt=choices.negative_prompt if spec.negative_prompt_max else None,
            cfg_scale=choices.cfg_scale if spec.cfg_scale else None,
            tail_image=end_frame,
            reference_images=references,
            camera=PRESETS.get(camera) if camera else None,
            static_mask=images.static_mask if brush else None,
            dynamic_masks=images.dynamic_masks if brush else (),
            callback_url=callback_url,
            external_id=external_id,
            shots=shots_of(shots, choices.duration) if shots else (),
            aspect=choices.aspect if spec.aspect_ratio else None,
        )
    except ValidationError as exc:
        raise RequestRefused(str(exc.errors()[0]["msg"])) from None
    refused = request_refusal(spec, request)
    if refused is not None:
        raise RequestRefused(refused)
    return request
