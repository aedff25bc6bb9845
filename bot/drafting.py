"""Draft rules: fitting options to a model and checking a draft before anything is paid."""

from __future__ import annotations

from bot.providers.camera import PRESETS
from bot.providers.catalogue import Catalogue, ModelSpec
from bot.texts import t
from storage.models import Draft, GenerationOptions, ImageUse

CFG_STEPS = (0.3, 0.5, 0.7, 0.9)


def image_uses(spec: ModelSpec, count: int) -> list[ImageUse]:
    """What `count` photos can be used for with this model, the most natural first."""
    uses = []
    if count == 2 and spec.end_frame:
        uses.append(ImageUse.END_FRAME)
    if count >= 2 and spec.multi_image:
        uses.append(ImageUse.REFERENCES)
    uses.append(ImageUse.SINGLE)
    return uses


def fit_options(spec: ModelSpec, options: GenerationOptions, count: int = 1) -> GenerationOptions:
    """`options` moved to `spec`'s model and `count` photos, dropping what does not apply.

    The negative prompt and cfg_scale are kept (the user typed them) and only sent to
    models that take them.
    """
    uses = image_uses(spec, count)
    images = options.images if options.images in uses else uses[0]
    camera = options.camera if spec.camera and images is ImageUse.SINGLE else None
    return options.model_copy(
        update={
            "model": spec.id,
            "duration": options.duration
            if options.duration in spec.durations
            else spec.durations[0],
            "sound": options.sound and spec.sound,
            "mode": (options.mode if options.mode in spec.modes else spec.modes[0])
            if spec.modes
            else None,
            "images": images,
            "camera": camera if camera in PRESETS else None,
        }
    )


def model_for_album(catalogue: Catalogue, current: ModelSpec, count: int) -> ModelSpec:
    """The current model if it can use an album of `count` photos, else the first that can."""
    if count < 2 or image_uses(current, count)[0] is not ImageUse.SINGLE:
        return current
    for spec in catalogue.models:
        if image_uses(spec, count)[0] is not ImageUse.SINGLE:
            return spec
    return current


def next_cfg(current: float | None) -> float:
    """The next value of the cfg_scale button."""
    value = 0.5 if current is None else current
    later = [step for step in CFG_STEPS if step > value + 1e-9]
    return later[0] if later else CFG_STEPS[0]


def draft_problem(draft: Draft, spec: ModelSpec) -> str | None:
    """Why this draft cannot be generated as it is, in the user's language; None if it can."""
    prompt = draft.prompt or ""
    if len(prompt) > spec.prompt_max:
        return t(
            draft.lang,
            "prompt_too_long",
            length=len(prompt),
            model=spec.label,
            limit=spec.prompt_max,
        )
    negative = draft.options.negative_prompt or ""
    if spec.negative_prompt_max and len(negative) > spec.negative_prompt_max:
        return t(
            draft.lang,
            "negative_too_long",
            length=len(negative),
            model=spec.label,
            limit=spec.negative_prompt_max,
        )
    return None
