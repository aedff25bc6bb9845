"""Draft, status and list messages with their keyboards."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callback_data import Action, DraftButton, TaskAction, TaskButton
from bot.core.failures import Failure
from bot.drafting import features, image_uses, offer
from bot.engine.images import LONGEST, SMALLEST
from bot.engine.timing import RunTimes, remaining
from bot.providers.base import split_duration
from bot.providers.camera import CODES as CAMERA_CODES
from bot.providers.catalogue import CAMERA, END_FRAME, Catalogue, ModelSpec
from bot.texts import t
from storage.models import Draft, GenerationOptions, Task, TaskState

PROMPT_PREVIEW = 600
LIST_PROMPT_PREVIEW = 60
# A video being sent this long was not sent: Telegram refused it, and even a link to it.
UNDELIVERED_AFTER = 600.0

_ICONS = {
    TaskState.SUBMITTING: "⏳",
    TaskState.QUEUED: "⏳",
    TaskState.RUNNING: "🎬",
    TaskState.SUCCEEDED: "📤",
    TaskState.DELIVERING: "📤",
    TaskState.DELIVERED: "✅",
    TaskState.FAILED: "❌",
}


def excerpt(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _sound(lang: str, spec: ModelSpec | None, options: GenerationOptions) -> str:
    if spec is None or not spec.sound:
        return ""
    return t(lang, "draft.sound_on" if options.sound else "draft.sound_off")


def _option_extras(lang: str, spec: ModelSpec | None, options: GenerationOptions) -> str:
    extras = _sound(lang, spec, options)
    if spec is not None and len(spec.modes) > 1 and options.mode:
        extras += t(lang, "draft.mode", mode=t(lang, f"mode.{options.mode}"))
    if spec is not None and spec.cfg_scale and options.cfg_scale is not None:
        extras += t(lang, "draft.cfg", cfg=f"{options.cfg_scale:g}")
    return extras


def draft_text(draft: Draft, catalogue: Catalogue) -> str:
    """The draft message: prompt, options and a hint."""
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
    return "\n".join(lines)


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


# Lengths always worth one tap when a model takes many (3-15 s): the usual ones.
COMMON_DURATIONS = (5, 10)


def duration_choices(durations: tuple[int, ...], current: int) -> list[int]:
    """The lengths to show as buttons: all of a few; of many, the ends, the usual ones and
    the current one's neighbours, so 3-15 s fits one row and any length is a few taps away."""
    if len(durations) <= 4:
        return list(durations)
    index = durations.index(current) if current in durations else 0
    near = durations[max(0, index - 1) : index + 2]
    wanted = {durations[0], durations[-1], *near, *COMMON_DURATIONS}
    return [seconds for seconds in durations if seconds in wanted]


def _button_maker(draft: Draft) -> Callable[..., InlineKeyboardButton]:
    def button(text: str, action: Action, argument: str | None = None) -> InlineKeyboardButton:
        data = DraftButton(draft.id, action, argument).encode()
        return InlineKeyboardButton(text, callback_data=data)

    return button


def draft_keyboard(draft: Draft, catalogue: Catalogue) -> InlineKeyboardMarkup:
    """Buttons for exactly the options the draft's model has."""
    lang, options = draft.lang, draft.options
    spec = catalogue.get(options.model)
    button = _button_maker(draft)
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
    toggles = []
    if offered and offered.sound:
        key = "btn.sound_on" if options.sound else "btn.sound_off"
        toggles.append(button(t(lang, key), Action.SOUND))
    if offered and len(offered.modes) > 1 and options.mode:
        mode = t(lang, f"mode.{options.mode}")
        toggles.append(button(t(lang, "btn.mode", mode=mode), Action.MODE))
    if spec and spec.cfg_scale:
        cfg = 0.5 if options.cfg_scale is None else options.cfg_scale
        toggles.append(button(t(lang, "btn.cfg", cfg=f"{cfg:g}"), Action.CFG))
    if toggles:
        rows.append(toggles)
    if offered and offered.shots:
        count = len(options.shots)
        key = "btn.shots_on" if options.multi_shot else "btn.shots_off"
        rows.append([button(t(lang, key, count=count), Action.SHOTS)])
    if spec and len(image_uses(spec, draft.image_count)) > 1:
        rows.append([button(t(lang, f"btn.images.{options.images.value}"), Action.IMAGES)])
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


def _generation(spec: ModelSpec) -> tuple[int, ...]:
    """The model's version from its label ("Kling 2.5 Turbo" → (2, 5)); none sorts last."""
    return tuple(int(part) for part in re.findall(r"\d+", spec.label)[:2])


def model_rows(
    catalogue: Catalogue,
    current: str,
    group: str | None,
    model_button: Callable[[str, str], InlineKeyboardButton],
    group_button: Callable[[str, str], InlineKeyboardButton],
) -> list[list[InlineKeyboardButton]]:
    """A model picker that stays short with many models: a tab per backend, then that
    backend's models, newest first, two to a row. `group` is the tab shown (a backend)."""
    backends = list(dict.fromkeys(spec.backend for spec in catalogue.models))
    if group not in backends:
        chosen = catalogue.get(current)
        group = chosen.backend if chosen is not None else backends[0]
    rows = []
    if len(backends) > 1:
        tabs = [
            group_button(("✅ " if name == group else "") + catalogue.title(name), name)
            for name in backends
        ]
        rows += [tabs[i : i + 4] for i in range(0, len(tabs), 4)]
    models = sorted(
        (spec for spec in catalogue.models if spec.backend == group),
        key=_generation,
        reverse=True,
    )
    buttons = [
        model_button(("✅ " if spec.id == current else "") + spec.label, spec.code)
        for spec in models
    ]
    rows += [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    return rows


def model_menu(
    draft: Draft, catalogue: Catalogue, group: str | None = None
) -> InlineKeyboardMarkup:
    """The model picker for a draft, and Back."""
    button = _button_maker(draft)
    rows = model_rows(
        catalogue,
        draft.options.model,
        group,
        lambda text, code: button(text, Action.MODEL, code),
        lambda text, name: button(text, Action.MODEL_GROUP, name),
    )
    rows.append([button(t(draft.lang, "btn.back"), Action.BACK)])
    return InlineKeyboardMarkup(rows)


def camera_menu(draft: Draft, spec: ModelSpec) -> InlineKeyboardMarkup:
    """The camera moves the model takes two by two, no move, and Back."""
    button = _button_maker(draft)
    lang, current = draft.lang, draft.options.camera
    offered = offer(spec, draft.options).cameras
    presets = [
        button(("✅ " if name == current else "") + t(lang, f"camera.{name}"), Action.CAMERA, code)
        for code, name in CAMERA_CODES.items()
        if name in offered
    ]
    rows = [presets[i : i + 2] for i in range(0, len(presets), 2)]
    rows.append(
        [button(("✅ " if current is None else "") + t(lang, "btn.no_camera"), Action.CAMERA, "0")]
    )
    rows.append([button(t(lang, "btn.back"), Action.BACK)])
    return InlineKeyboardMarkup(rows)


def reason_text(task: Task, task_timeout: float, owner_told: bool = False) -> str:
    """Why a task failed, in plain words; for what needs the owner, whether they were told."""
    lang = task.lang
    failure = Failure.of(task.error)
    detail = html.escape(excerpt(task.error_detail or "?", 300))
    minutes = max(1, round(task_timeout / 60))
    text = t(
        lang,
        f"reason.{failure.value}",
        detail=detail,
        minutes=minutes,
        smallest=SMALLEST,
        longest=LONGEST,
    )
    if failure.needs_owner:
        text += " " + t(lang, "reason.owner_told" if owner_told else "reason.tell_owner")
    return text


def status_text(
    task: Task,
    catalogue: Catalogue,
    task_timeout: float,
    times: RunTimes | None = None,
    *,
    owner_told: bool = False,
) -> str:
    """The status message that replaces a draft once it is generating."""
    lang = task.lang
    if task.state is TaskState.FAILED:
        reason = reason_text(task, task_timeout, owner_told)
        head = t(lang, "status.failed", id=task.id, reason=reason)
    elif task.state is TaskState.RUNNING and task.submitted_at is not None:
        head = t(
            lang,
            "status.running_for",
            id=task.id,
            elapsed=elapsed(lang, time.time() - task.submitted_at),
        )
    else:
        head = t(lang, f"status.{task.state.value}", id=task.id)
    if times is not None and task.state in _WAITING and task.submitted_at is not None:
        head += "\n" + eta(lang, times, time.time() - task.submitted_at)
    return f"{head}\n\n{summary(task, catalogue, PROMPT_PREVIEW // 2)}"


_WAITING = (TaskState.QUEUED, TaskState.RUNNING)
# Below this many seconds left, the video is "any moment" away.
SOON = 10.0


def eta(lang: str, times: RunTimes, age_seconds: float) -> str:
    """The expected time left, from the learned generation times."""
    if not times.learned:
        scale = times.quantile(0.9)
        low, high = span(lang, times.quantile(0.1), scale), span(lang, scale, scale)
        if low == high:  # a quick kind: a range of one rounded figure says it once
            return t(lang, "eta.usually_about", left=high)
        return t(lang, "eta.usually", low=low, high=high)
    left = remaining(times, age_seconds)
    if left is None:
        return t(lang, "eta.late")
    if left < SOON:
        return t(lang, "eta.soon")
    return t(lang, "eta.left", left=span(lang, left, left))


def span(lang: str, seconds: float, scale: float) -> str:
    """A rounded duration: fives of seconds under a minute (judged by `scale`), else minutes."""
    if scale < 90:
        return t(lang, "span.seconds", n=max(5, round(seconds / 5) * 5))
    return t(lang, "span.minutes", n=max(1, round(seconds / 60)))


def status_keyboard(task: Task) -> InlineKeyboardMarkup | None:
    """A Retry button under a failed task that another try might mend."""
    if task.state is not TaskState.FAILED or task.retried_as:
        return None
    if not Failure.of(task.error).retry_may_help:
        return None
    data = TaskButton(task.id, TaskAction.RETRY).encode()
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(t(task.lang, "btn.retry"), callback_data=data)]]
    )


def summary(task: Task, catalogue: Catalogue, prompt_limit: int) -> str:
    """Model, duration, sound and the prompt of a task."""
    spec = catalogue.get(task.options.model)
    return t(
        task.lang,
        "status.summary",
        model=html.escape(catalogue.label(task.options.model)),
        duration=task.options.duration,
        sound=_sound(task.lang, spec, task.options),
        prompt=html.escape(excerpt(task.prompt, prompt_limit)),
    )


def video_caption(task: Task, catalogue: Catalogue) -> str:
    """The delivered video's caption (≤ 1024 characters)."""
    spec = catalogue.get(task.options.model)
    return t(
        task.lang,
        "video.caption",
        prompt=html.escape(excerpt(task.prompt, 700)),
        model=html.escape(catalogue.label(task.options.model)),
        duration=task.options.duration,
        sound=_sound(task.lang, spec, task.options),
    )


def elapsed(lang: str, seconds: float) -> str:
    """A duration in whole minutes, like "2 min": a progress line that changes calmly."""
    minutes = max(0, int(seconds)) // 60
    if minutes:
        return t(lang, "elapsed.minutes", m=minutes)
    return t(lang, "elapsed.under_a_minute")


def age(lang: str, seconds: float) -> str:
    """A short relative age."""
    seconds = max(0, int(seconds))
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return t(lang, f"age.{unit}", n=seconds // size)
    return t(lang, "age.seconds", n=seconds)


def task_list(
    lang: str,
    tasks: list[Task],
    catalogue: Catalogue,
    now: float | None = None,
    times: Callable[[Task], RunTimes] | None = None,
) -> str:
    """The /status message."""
    if not tasks:
        return t(lang, "list.empty")
    now = time.time() if now is None else now
    lines = [t(lang, "list.header"), ""]
    for task in tasks:
        spec = catalogue.get(task.options.model)
        state = task.state.value
        if task.state is TaskState.DELIVERING and now - task.updated_at > UNDELIVERED_AFTER:
            state = "undelivered"
        lines.append(
            t(
                lang,
                "list.item",
                icon="⚠️" if state == "undelivered" else _ICONS[task.state],
                id=task.id,
                state=t(lang, f"state.{state}"),
                model=html.escape(catalogue.label(task.options.model)),
                duration=task.options.duration,
                sound=_sound(lang, spec, task.options),
                age=age(lang, now - task.created_at),
                prompt=html.escape(excerpt(task.prompt, LIST_PROMPT_PREVIEW)),
            )
        )
        if times is not None and task.state in _WAITING and task.submitted_at is not None:
            lines.append("    " + eta(lang, times(task), now - task.submitted_at))
    return "\n".join(lines)
