"""Draft rules: fitting options to a model and checking a draft before anything is paid."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bot.config import Settings
from bot.core.caption import Caption
from bot.providers.camera import CODES as CAMERA_CODES
from bot.providers.camera import PRESETS
from bot.providers.catalogue import CAMERA, END_FRAME, MULTI_SHOT, SOUND, Catalogue, ModelSpec
from storage import Limits
from storage.models import Draft, GenerationOptions, ImageUse

CFG_STEPS = (0.3, 0.5, 0.7, 0.9)


class Option(Enum):
    """An option of a draft (or of the defaults) that one choice changes."""

    DURATION = "duration"
    SOUND = "sound"
    MODE = "mode"
    SHOTS = "shots"
    CFG = "cfg"
    IMAGES = "images"
    CAMERA = "camera"
    MODEL = "model"


@dataclass(frozen=True)
class Problem:
    """Why a draft cannot be generated as it is: a text key and the values it names."""

    key: str
    values: dict[str, object] = field(default_factory=dict)


def image_uses(spec: ModelSpec, count: int) -> list[ImageUse]:
    """What `count` photos can be used for with this model, the most natural first."""
    uses = []
    if count == 2 and spec.end_frame is not None:
        uses.append(ImageUse.END_FRAME)
    if count >= 2 and spec.multi_image:
        uses.append(ImageUse.REFERENCES)
    uses.append(ImageUse.SINGLE)
    return uses


def features(options: GenerationOptions) -> list[str]:
    """The features the options use, the one a user chooses most deliberately first."""
    used = []
    if options.images is ImageUse.END_FRAME:
        used.append(END_FRAME)
    if options.camera:
        used.append(CAMERA)
    if options.multi_shot:
        used.append(MULTI_SHOT)
    if options.sound:
        used.append(SOUND)
    return used


def _without(options: GenerationOptions, feature: str) -> GenerationOptions:
    """The options with one feature turned off."""
    if feature == END_FRAME:
        return options.model_copy(update={"images": ImageUse.SINGLE})
    if feature == CAMERA:
        return options.model_copy(update={"camera": None})
    if feature == MULTI_SHOT:
        return options.model_copy(update={"multi_shot": False})
    return options.model_copy(update={"sound": False})


def _camera_type(options: GenerationOptions) -> str | None:
    move = PRESETS.get(options.camera) if options.camera else None
    return move.type if move is not None else None


def _settings(spec: ModelSpec) -> list[tuple[str | None, int]]:
    modes: tuple[str | None, ...] = spec.modes or (None,)
    return [(mode, duration) for mode in modes for duration in spec.durations]


def usable_settings(
    spec: ModelSpec, options: GenerationOptions, used: list[str]
) -> list[tuple[str | None, int]]:
    """The (mode, length) pairs in which all of `used` work together on this model."""
    camera = _camera_type(options) if CAMERA in used else None
    shots = len(options.shots)
    return [
        (mode, duration)
        for mode, duration in _settings(spec)
        if spec.refusal(mode, duration, used, camera, shots) is None
    ]


def fit_options(
    spec: ModelSpec, options: GenerationOptions, count: int = 1, first: str | None = None
) -> GenerationOptions:
    """`options` moved to `spec`'s model and `count` photos, as the model's map accepts them.

    A feature that needs another mode or length switches them, keeping the length before the
    mode; one that cannot work with those chosen before it is turned off. `first` (the
    feature the user just turned on) goes before the others. The negative prompt and
    cfg_scale are kept (the user typed them) and only sent to models that take them.
    """
    uses = image_uses(spec, count)
    images = options.images if options.images in uses else uses[0]
    camera = options.camera if spec.camera is not None and images is ImageUse.SINGLE else None
    fitted = options.model_copy(
        update={
            "model": spec.id,
            "duration": options.duration
            if options.duration in spec.durations
            else spec.durations[0],
            "sound": options.sound and spec.sound is not None,
            "multi_shot": options.multi_shot and spec.multi_shot is not None,
            "mode": (options.mode if options.mode in spec.modes else spec.modes[0])
            if spec.modes
            else None,
            "images": images,
            "camera": camera if camera in PRESETS else None,
        }
    )
    order = features(fitted)
    if first in order:
        order = [first, *(feature for feature in order if feature != first)]
    kept: list[str] = []
    for feature in order:
        usable = usable_settings(spec, fitted, [*kept, feature])
        if not usable:
            fitted = _without(fitted, feature)
            continue
        kept.append(feature)
        if (fitted.mode, fitted.duration) not in usable:
            # Keep the length if a mode allows it, else the mode, else the first that works.
            mode, duration = next(
                (pair for pair in usable if pair[1] == fitted.duration),
                next((pair for pair in usable if pair[0] == fitted.mode), usable[0]),
            )
            fitted = fitted.model_copy(update={"mode": mode, "duration": duration})
    return fitted


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


def draft_problem(draft: Draft, spec: ModelSpec) -> Problem | None:
    """Why this draft cannot be generated as it is; None if it can."""
    prompt = draft.prompt or ""
    if len(prompt) > spec.prompt_max:
        return Problem(
            "prompt_too_long",
            {"length": len(prompt), "model": spec.label, "limit": spec.prompt_max},
        )
    negative = draft.options.negative_prompt or ""
    if spec.negative_prompt_max and len(negative) > spec.negative_prompt_max:
        return Problem(
            "negative_too_long",
            {"length": len(negative), "model": spec.label, "limit": spec.negative_prompt_max},
        )
    if draft.options.multi_shot and spec.multi_shot is not None:
        for index, shot in enumerate(draft.options.shots, 1):
            if len(shot) > spec.shot_prompt_max:
                return Problem(
                    "shot_too_long",
                    {
                        "index": index,
                        "length": len(shot),
                        "model": spec.label,
                        "limit": spec.shot_prompt_max,
                    },
                )
    return None


def next_mode(modes: tuple[str, ...], current: str | None) -> str | None:
    """The mode after `current` among `modes`; None when there is no other."""
    if len(modes) < 2:
        return None
    index = modes.index(current) if current in modes else -1
    return modes[(index + 1) % len(modes)]


@dataclass(frozen=True)
class Offer:
    """What the draft keyboard offers: only choices the model's map accepts as they stand."""

    durations: tuple[int, ...]
    modes: tuple[str, ...]
    sound: bool
    cameras: tuple[str, ...]
    # Whether the prompt's shots can go as one multi-shot video (or back to one shot).
    shots: bool = False


def offer(spec: ModelSpec, options: GenerationOptions) -> Offer:
    """The lengths, modes, sound toggle and camera moves the draft can switch to now."""
    used = features(options)
    usable = usable_settings(spec, options, used)
    durations = tuple(d for d in spec.durations if (options.mode, d) in usable)
    modes = tuple(m for m in spec.modes if (m, options.duration) in usable)
    sound = spec.sound is not None and (
        options.sound or bool(usable_settings(spec, options, [*used, SOUND]))
    )
    cameras: tuple[str, ...] = ()
    if spec.camera is not None and options.images is ImageUse.SINGLE:
        others = [feature for feature in used if feature != CAMERA]
        cameras = tuple(
            name
            for name in PRESETS
            if usable_settings(spec, options.model_copy(update={"camera": name}), [*others, CAMERA])
        )
    shots = spec.multi_shot is not None and (
        options.multi_shot or bool(usable_settings(spec, options, [*used, MULTI_SHOT]))
    )
    return Offer(durations, modes, sound, cameras, shots)


# What a switch button sets, in its `callback_data`: the same press twice (a double tap, an
# update handled again) sets the same value, instead of switching back.
ON, OFF = "1", "0"
IMAGE_CODES = {ImageUse.SINGLE: "s", ImageUse.END_FRAME: "e", ImageUse.REFERENCES: "r"}


def switch_to(on: bool) -> str:
    """The argument of a button that turns something on (`on`) or off."""
    return ON if on else OFF


def mode_code(mode: str) -> str:
    """A mode as a button argument (lowercase ASCII: "4K" is "4k")."""
    return mode.lower()


def cfg_code(value: float) -> str:
    """A cfg_scale step as a button argument: tenths ("7" for 0.7)."""
    return str(round(value * 10))


def _mode_named(modes: tuple[str, ...], code: str) -> str | None:
    return next((mode for mode in modes if mode_code(mode) == code), None)


def _cfg_named(code: str) -> float | None:
    return next((step for step in CFG_STEPS if cfg_code(step) == code), None)


def _switch(
    spec: ModelSpec, options: GenerationOptions, count: int, field: str, on: bool, what: str
) -> GenerationOptions:
    if not on:
        return options.model_copy(update={field: False})
    if getattr(options, field):
        return options
    return fit_options(spec, options.model_copy(update={field: True}), count, what)


def apply_option(
    draft: Draft, spec: ModelSpec, option: Option, argument: str | None, catalogue: Catalogue
) -> GenerationOptions | None:
    """The draft's options after a choice of `option`, or None if the choice does not apply.

    Switches set the value their button names; a button without one (sent before they named
    it) switches to the next value.
    """
    options = draft.options
    count = draft.image_count
    offered = offer(spec, options)
    if argument is not None and option in _SET_BY_ARGUMENT:
        return _set(draft, spec, option, argument, offered)
    if option is Option.DURATION and argument is not None:
        seconds = int(argument) if argument.isdigit() else 0
        if seconds not in offered.durations:
            return None
        return options.model_copy(update={"duration": seconds})
    if option is Option.SOUND and offered.sound:
        if options.sound:
            return options.model_copy(update={"sound": False})
        return fit_options(spec, options.model_copy(update={"sound": True}), count, SOUND)
    if option is Option.MODE and (mode := next_mode(offered.modes, options.mode)) is not None:
        return options.model_copy(update={"mode": mode})
    if option is Option.SHOTS and offered.shots:
        if options.multi_shot:
            return options.model_copy(update={"multi_shot": False})
        return fit_options(spec, options.model_copy(update={"multi_shot": True}), count, MULTI_SHOT)
    if option is Option.CFG and spec.cfg_scale:
        return options.model_copy(update={"cfg_scale": next_cfg(options.cfg_scale)})
    if option is Option.IMAGES:
        if len(image_uses(spec, count)) < 2:
            return None
        following = options.model_copy(update={"images": next_image_use(spec, options, count)})
        return fit_options(spec, following, count, END_FRAME)
    if option is Option.CAMERA and argument is not None:
        if argument == "0":
            return options.model_copy(update={"camera": None}) if offered.cameras else None
        name = CAMERA_CODES.get(argument)
        if name not in offered.cameras:
            return None
        return fit_options(spec, options.model_copy(update={"camera": name}), count, CAMERA)
    if option is Option.MODEL and argument is not None:
        chosen = catalogue.by_code(argument)
        if chosen is None:
            return None
        if spec.multi_shot is None and options.shots:
            # The caption asked for shots; the model left could not make them, this one may.
            options = options.model_copy(update={"multi_shot": True})
        return fit_options(chosen, options, count)
    return None


_SET_BY_ARGUMENT = {Option.SOUND, Option.MODE, Option.SHOTS, Option.CFG, Option.IMAGES}


def _set(
    draft: Draft, spec: ModelSpec, option: Option, argument: str, offered: Offer
) -> GenerationOptions | None:
    """A switch set to the value its button names; None if that value is not offered."""
    options, count = draft.options, draft.image_count
    if argument not in (ON, OFF) and option in (Option.SOUND, Option.SHOTS):
        return None
    if option is Option.SOUND and offered.sound:
        return _switch(spec, options, count, "sound", argument == ON, SOUND)
    if option is Option.SHOTS and offered.shots:
        return _switch(spec, options, count, "multi_shot", argument == ON, MULTI_SHOT)
    if option is Option.MODE and (mode := _mode_named(offered.modes, argument)) is not None:
        return options.model_copy(update={"mode": mode})
    if option is Option.CFG and spec.cfg_scale and (cfg := _cfg_named(argument)) is not None:
        return options.model_copy(update={"cfg_scale": cfg})
    if option is Option.IMAGES:
        uses = image_uses(spec, count)
        use = next((use for use in uses if IMAGE_CODES[use] == argument), None)
        if use is None or len(uses) < 2:
            return None
        return fit_options(spec, options.model_copy(update={"images": use}), count, END_FRAME)
    return None


def next_image_use(spec: ModelSpec, options: GenerationOptions, count: int) -> ImageUse:
    """What the photos are used for after the images button."""
    uses = image_uses(spec, count)
    index = uses.index(options.images) if options.images in uses else -1
    return uses[(index + 1) % len(uses)]


def apply_default(
    options: GenerationOptions, option: Option, argument: str | None, catalogue: Catalogue
) -> GenerationOptions | None:
    """A user's default options after a choice in /settings, or None if it does not apply."""
    spec = catalogue.get(options.model)
    if spec is None:
        return None
    if argument is not None and option is Option.SOUND:
        if not spec.sound or argument not in (ON, OFF):
            return None
        return options.model_copy(update={"sound": argument == ON})
    if argument is not None and option is Option.MODE:
        mode = _mode_named(spec.modes, argument) if len(spec.modes) > 1 else None
        return options.model_copy(update={"mode": mode}) if mode is not None else None
    if option is Option.DURATION and argument is not None:
        seconds = int(argument)
        return (
            options.model_copy(update={"duration": seconds}) if seconds in spec.durations else None
        )
    if option is Option.SOUND and spec.sound:
        return options.model_copy(update={"sound": not options.sound})
    if option is Option.MODE and (mode := next_mode(spec.modes, options.mode)):
        return options.model_copy(update={"mode": mode})
    if option is Option.MODEL and argument is not None:
        chosen = catalogue.by_code(argument)
        return fit_options(chosen, options) if chosen else None
    return None


def with_caption(
    options: GenerationOptions, caption: Caption, spec: ModelSpec, count: int = 1
) -> GenerationOptions:
    """`options` with what the caption asked for (negative prompt, cfg_scale, shots), fitted
    to the model's map again: shots may need a longer length, or cannot be taken at all."""
    update: dict[str, object] = {}
    if caption.negative_prompt:
        update["negative_prompt"] = caption.negative_prompt
    if caption.cfg_scale is not None:
        update["cfg_scale"] = caption.cfg_scale
    # Shots come with the prompt: a new prompt brings its own (or none), on where taken.
    update["shots"] = caption.shots
    update["multi_shot"] = bool(caption.shots)
    return fit_options(spec, options.model_copy(update=update), count)


def limits(settings: Settings) -> Limits:
    """How much one user may have going, from the configuration."""
    return Limits(settings.max_active_tasks_per_user, settings.daily_tasks_per_user)
