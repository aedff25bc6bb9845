"""The draft message: its prompt and options, what stops it, and its option buttons."""

from __future__ import annotations

import html
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import Action, DraftButton
from bot.chat.texts import t
from bot.chat.views.parts import duration_choices, excerpt, sound_mark
from bot.drafts.options import (
    IMAGE_CODES,
    Problem,
    cfg_code,
    draft_problem,
    features,
    image_uses,
    mode_code,
    next_cfg,
    next_image_use,
    next_mode,
    offer,
    switch_to,
)
from bot.providers.base import split_duration
from bot.providers.catalogue import CAMERA, END_FRAME, Catalogue, ModelSpec
from storage.models import Draft, GenerationOptions

PROMPT_PREVIEW = 600

DraftButtonMaker = Callable[..., InlineKeyboardButton]


def _option_extras(lang: str, spec: ModelSpec | None, options: GenerationOptions) -> str:
    extras = sound_mark(lang, spec, options)
    if spec is not None and len(spec.modes) > 1 and options.mode:
        extras += t(lang, "draft.mode", mode=t(lang, f"mode.{options.mode}"))
    if spec is not None and spec.cfg_scale and options.cfg_scale is not None:
        extras += t(lang, "draft.cfg", cfg=f"{options.cfg_scale:g}")
    return extras


def problem_text(lang: str, problem: Problem) -> str:
    """Why the draft cannot be generated as it is, in the user's language."""
    return t(lang, problem.key, **problem.values)


def draft_text(draft: Draft, catalogue: Catalogue) -> str:
    """The draft message: prompt, options, a hint, and what stops it from being generated."""
    lang, options = draft.lang, draft.options
    spec = catalogue.get(options.model)
    lines = [
        t(lang, "draft.title"),
        "",
        t(lang, "draft.prompt", prompt=html.escape(excerpt(draft.prompt or "", PROMPT_PREVIEW))),
    ]
    if options.negative_prompt and spec is not None and spec.negative_prompt_max:
        negative = html.escape(excerpt(options.negative_prompt, PROMPT_PREVIEW // 2))
        lines.append(t(lang, "draft.negative", negative=negative))
    lines.append(
        t(
            lang,
            "draft.options",
            model=html.escape(catalogue.label(options.model)),
            duration=options.duration,
            extras=_option_extras(lang, spec, options),
        )
    )
    if draft.image_count > 1:
        key = f"draft.images.{options.images.value}"
        lines.append(t(lang, key, count=draft.image_count))
    if options.camera:
        lines.append(t(lang, "draft.camera", camera=t(lang, f"camera.{options.camera}")))
    if spec is not None:
        lines += _shots(lang, spec, options)
        if spec.multi_shot is None and options.shots:
            lines += _shots_elsewhere(lang, catalogue, len(options.shots))
    if spec is not None:
        lines += _constraints(lang, spec, options, draft.image_count)
    if spec is not None and spec.backend == "preview":
        lines += ["", t(lang, "draft.preview_note")]
    lines += ["", t(lang, "draft.hint")]
    text = "\n".join(lines)
    problem = draft_problem(draft, spec) if spec else None
    return f"{text}\n\n⚠️ {html.escape(problem_text(lang, problem))}" if problem else text


def _shots(lang: str, spec: ModelSpec, options: GenerationOptions) -> list[str]:
    """The prompt's shots with their lengths, or that they go as one shot."""
    count = len(options.shots)
    if not count or spec.multi_shot is None:
        return []
    if not options.multi_shot:
        if offer(spec, options).shots:
            return [t(lang, "draft.shots_off", count=count)]
        if count > spec.shots_max:
            return [
                t(lang, "draft.shots_too_many", model=spec.label, most=spec.shots_max, count=count)
            ]
        return [t(lang, "draft.shots_not_now", model=spec.label, count=count)]
    lengths = split_duration(options.duration, count)
    return [t(lang, "draft.shots", count=count)] + [
        t(lang, "draft.shot", index=n, prompt=html.escape(excerpt(text, 120)), seconds=seconds)
        for n, (text, seconds) in enumerate(zip(options.shots, lengths, strict=True), 1)
    ]


def _shots_elsewhere(lang: str, catalogue: Catalogue, count: int) -> list[str]:
    """A hint that another offered model makes the caption's lines separate shots."""
    for spec in catalogue.models:
        if spec.multi_shot is not None and count <= spec.shots_max:
            label = catalogue.label(spec.id)
            return [t(lang, "draft.shots_elsewhere", count=count, model=html.escape(label))]
    return []


def _constraints(lang: str, spec: ModelSpec, options: GenerationOptions, photos: int) -> list[str]:
    """Plain words for what the model's map decided: the modes or lengths a feature needs,
    and the features it switched off."""
    lines = []
    used = features(options)
    for feature in used:
        where = spec.where(feature)
        if where is None:
            continue
        needs = []
        if where.modes is not None and set(spec.modes) - where.modes:
            modes = " / ".join(t(lang, f"mode.{mode}") for mode in sorted(where.modes))
            needs.append(t(lang, "needs.mode", mode=modes))
        if where.durations is not None and set(spec.durations) - where.durations:
            seconds = " / ".join(str(d) for d in sorted(where.durations))
            needs.append(t(lang, "needs.duration", seconds=seconds))
        name = t(lang, f"feature.{feature}")
        if needs:
            lines.append(
                t(lang, "draft.needs", feature=name, model=spec.label, needs=" ".join(needs))
            )
        excluded = set(where.without)
        if feature == END_FRAME:
            excluded.add(CAMERA)  # the camera row is gone: say why
        if photos != 2:
            excluded.discard(END_FRAME)  # no end frame to switch off with one photo
        for other in sorted(excluded - set(used)):
            if spec.where(other) is not None:
                other_name = t(lang, f"feature.{other}")
                lines.append(
                    t(lang, "draft.excludes", feature=name, other=other_name, model=spec.label)
                )
    return lines


def draft_button(draft: Draft) -> DraftButtonMaker:
    """A maker of this draft's buttons: text, action and argument."""

    def button(text: str, action: Action, argument: str | None = None) -> InlineKeyboardButton:
        data = DraftButton(draft.id, action, argument).encode()
        return InlineKeyboardButton(text, callback_data=data)

    return button


def draft_keyboard(draft: Draft, catalogue: Catalogue) -> InlineKeyboardMarkup:
    """Buttons for exactly the options the draft's model has."""
    lang, options = draft.lang, draft.options
    spec = catalogue.get(options.model)
    button = draft_button(draft)
    offered = offer(spec, options) if spec else None
    durations = offered.durations if offered else (options.duration,)
    rows = [
        [
            button(
                ("✅ " if seconds == options.duration else "")
                + t(lang, "btn.duration", seconds=seconds),
                Action.DURATION,
                str(seconds),
            )
            for seconds in duration_choices(durations, options.duration)
        ]
    ]
    # Each switch names the value it sets (see bot/drafts/options.py: a press handled twice
    # sets it twice, never back).
    toggles = []
    if offered and offered.sound:
        key = "btn.sound_on" if options.sound else "btn.sound_off"
        toggles.append(button(t(lang, key), Action.SOUND, switch_to(not options.sound)))
    if offered and len(offered.modes) > 1 and options.mode:
        mode = t(lang, f"mode.{options.mode}")
        following = next_mode(offered.modes, options.mode) or options.mode
        toggles.append(button(t(lang, "btn.mode", mode=mode), Action.MODE, mode_code(following)))
    if spec and spec.cfg_scale:
        cfg = 0.5 if options.cfg_scale is None else options.cfg_scale
        label = t(lang, "btn.cfg", cfg=f"{cfg:g}")
        toggles.append(button(label, Action.CFG, cfg_code(next_cfg(options.cfg_scale))))
    if toggles:
        rows.append(toggles)
    if offered and offered.shots:
        count = len(options.shots)
        key = "btn.shots_on" if options.multi_shot else "btn.shots_off"
        shots = switch_to(not options.multi_shot)
        rows.append([button(t(lang, key, count=count), Action.SHOTS, shots)])
    if spec and len(image_uses(spec, draft.image_count)) > 1:
        use = IMAGE_CODES[next_image_use(spec, options, draft.image_count)]
        label = t(lang, f"btn.images.{options.images.value}")
        rows.append([button(label, Action.IMAGES, use)])
    if offered and offered.cameras:
        camera = t(lang, f"camera.{options.camera or 'none'}")
        rows.append([button(t(lang, "btn.camera", camera=camera), Action.CAMERA_MENU)])
    if len(catalogue.models) > 1:
        label = catalogue.label(options.model)
        rows.append([button(t(lang, "btn.model", model=label) + " ▾", Action.MODEL_MENU)])
    if spec and len(draft.prompt or "") > spec.prompt_max:
        rows.append([button(t(lang, "btn.trim", limit=spec.prompt_max), Action.TRIM)])
    rows.append(
        [
            button(t(lang, "btn.cancel"), Action.CANCEL),
            button(t(lang, "btn.generate"), Action.GENERATE),
        ]
    )
    return InlineKeyboardMarkup(rows)
