"""Draft rules: fitting options to a model and checking a draft before anything is paid."""

from __future__ import annotations

from bot.callback_data import Action, DraftButton
from bot.config import Settings
from bot.providers.camera import CODES as CAMERA_CODES
from bot.providers.camera import PRESETS
from bot.providers.catalogue import Catalogue, ModelSpec
from bot.texts import t
from storage import Limits, Refusal
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


def next_mode(spec: ModelSpec, current: str | None) -> str | None:
    """The mode after `current` among the model's modes."""
    if len(spec.modes) < 2:
        return None
    index = spec.modes.index(current) if current in spec.modes else -1
    return spec.modes[(index + 1) % len(spec.modes)]


def apply_button(
    draft: Draft, spec: ModelSpec, pressed: DraftButton, catalogue: Catalogue
) -> GenerationOptions | None:
    """The options after an option button, or None if the button does not apply here."""
    options, action, argument = draft.options, pressed.action, pressed.argument
    if action is Action.DURATION and argument is not None:
        seconds = int(argument)
        return (
            options.model_copy(update={"duration": seconds}) if seconds in spec.durations else None
        )
    if action is Action.SOUND and spec.sound:
        return options.model_copy(update={"sound": not options.sound})
    if action is Action.MODE and (mode := next_mode(spec, options.mode)) is not None:
        return options.model_copy(update={"mode": mode})
    if action is Action.CFG and spec.cfg_scale:
        return options.model_copy(update={"cfg_scale": next_cfg(options.cfg_scale)})
    if action is Action.IMAGES:
        uses = image_uses(spec, draft.image_count)
        if len(uses) < 2:
            return None
        index = uses.index(options.images) if options.images in uses else -1
        following = options.model_copy(update={"images": uses[(index + 1) % len(uses)]})
        return fit_options(spec, following, draft.image_count)
    if action is Action.CAMERA and argument is not None:
        if not spec.camera or options.images is not ImageUse.SINGLE:
            return None
        if argument == "0":
            return options.model_copy(update={"camera": None})
        name = CAMERA_CODES.get(argument)
        return options.model_copy(update={"camera": name}) if name else None
    if action is Action.MODEL and argument is not None:
        chosen = catalogue.by_code(argument)
        return fit_options(chosen, options, draft.image_count) if chosen else None
    return None


def limits(settings: Settings) -> Limits:
    """How much one user may have going, from the configuration."""
    return Limits(settings.max_active_tasks_per_user, settings.daily_tasks_per_user)


def refusal_text(lang: str, refusal: Refusal, settings: Settings) -> str:
    """Why Generate (or Retry) made no task, in the user's language."""
    if refusal is Refusal.ACTIVE_LIMIT:
        return t(lang, "answer.active_limit", limit=settings.max_active_tasks_per_user)
    if refusal is Refusal.DAILY_LIMIT:
        return t(lang, "answer.daily_limit", limit=settings.daily_tasks_per_user)
    return t(lang, "answer.submitted")
