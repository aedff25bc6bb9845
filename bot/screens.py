"""Messages and keyboards of the commands: /status pages, /settings, /balance, /stats."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable, Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callback_data import (
    SettingsAction,
    SettingsButton,
    TaskAction,
    TaskButton,
    page_button,
)
from bot.engine.timing import RunTimes
from bot.providers.catalogue import Catalogue
from bot.render import age, duration_choices, excerpt, model_rows, reason_text, task_list
from bot.texts import LANGUAGES, t
from storage import Stats
from storage.models import GenerationOptions, Task, TaskState

PAGE_SIZE = 5
# A message holds 4096 characters; each backend's line of /balance gets its share of that.
MESSAGE_LIMIT = 4096
BALANCE_DETAIL = 600


def pages(total: int) -> int:
    """How many /status pages `total` tasks fill (at least one)."""
    return max(1, math.ceil(total / PAGE_SIZE))


def status_page(
    lang: str,
    tasks: list[Task],
    catalogue: Catalogue,
    page: int,
    total: int,
    times: Callable[[Task], RunTimes] | None = None,
) -> tuple[str, InlineKeyboardMarkup | None]:
    """One /status page: the tasks, a refresh and an again button each, and the pager."""
    text = task_list(lang, tasks, catalogue, times=times)
    if not tasks:
        return text, None
    count = pages(total)
    if count > 1:
        text += "\n\n" + t(lang, "list.page", page=page + 1, pages=count)
    rows = []
    for task in tasks:
        row = [
            InlineKeyboardButton(
                t(lang, "btn.refresh", id=task.id),
                callback_data=TaskButton(task.id, TaskAction.REFRESH).encode(),
            )
        ]
        if task.state.finished:
            row.append(
                InlineKeyboardButton(
                    t(lang, "btn.again", id=task.id),
                    callback_data=TaskButton(task.id, TaskAction.AGAIN).encode(),
                )
            )
        rows.append(row)
    pager = []
    if page > 0:
        pager.append(InlineKeyboardButton(t(lang, "btn.prev"), callback_data=page_button(page - 1)))
    if page + 1 < count:
        pager.append(InlineKeyboardButton(t(lang, "btn.next"), callback_data=page_button(page + 1)))
    if pager:
        rows.append(pager)
    return text, InlineKeyboardMarkup(rows)


def video_keyboard(task: Task) -> InlineKeyboardMarkup:
    """Under a delivered video: the same again, or the same photo with a new prompt."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    t(task.lang, "btn.video_again"),
                    callback_data=TaskButton(task.id, TaskAction.AGAIN).encode(),
                ),
                InlineKeyboardButton(
                    t(task.lang, "btn.video_new"),
                    callback_data=TaskButton(task.id, TaskAction.NEW).encode(),
                ),
            ]
        ]
    )


def _settings_button(
    text: str, action: SettingsAction, arg: str | None = None
) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=SettingsButton(action, arg).encode())


def settings_screen(
    lang: str, options: GenerationOptions, catalogue: Catalogue
) -> tuple[str, InlineKeyboardMarkup]:
    """/settings: the user's defaults and buttons to change them."""
    spec = catalogue.get(options.model)
    extras = ""
    if spec is not None and spec.sound:
        extras += t(lang, "draft.sound_on" if options.sound else "draft.sound_off")
    if spec is not None and len(spec.modes) > 1 and options.mode:
        extras += t(lang, "draft.mode", mode=t(lang, f"mode.{options.mode}"))
    text = "\n".join(
        [
            t(lang, "settings.title"),
            "",
            t(
                lang,
                "settings.body",
                model=html.escape(catalogue.label(options.model)),
                duration=options.duration,
                extras=extras,
                language=t(lang, f"language.{lang}"),
            ),
            "",
            t(lang, "settings.hint"),
        ]
    )
    durations = spec.durations if spec else (options.duration,)
    rows = [
        [
            _settings_button(
                ("✅ " if seconds == options.duration else "")
                + t(lang, "btn.duration", seconds=seconds),
                SettingsAction.DURATION,
                str(seconds),
            )
            for seconds in duration_choices(durations, options.duration)
        ]
    ]
    toggles = []
    if spec is not None and spec.sound:
        key = "btn.sound_on" if options.sound else "btn.sound_off"
        toggles.append(_settings_button(t(lang, key), SettingsAction.SOUND))
    if spec is not None and len(spec.modes) > 1 and options.mode:
        mode = t(lang, f"mode.{options.mode}")
        toggles.append(_settings_button(t(lang, "btn.mode", mode=mode), SettingsAction.MODE))
    if toggles:
        rows.append(toggles)
    if len(catalogue.models) > 1:
        label = t(lang, "btn.model", model=catalogue.label(options.model)) + " ▾"
        rows.append([_settings_button(label, SettingsAction.MODEL_MENU)])
    rows.append(
        [
            _settings_button(
                ("✅ " if code == lang else "") + t(code, f"language.{code}"),
                SettingsAction.LANGUAGE,
                code,
            )
            for code in LANGUAGES
        ]
    )
    return text, InlineKeyboardMarkup(rows)


def settings_models(
    lang: str, current: str, catalogue: Catalogue, group: str | None = None
) -> InlineKeyboardMarkup:
    """The default-model menu of /settings."""
    rows = model_rows(
        catalogue,
        current,
        group,
        lambda text, code: _settings_button(text, SettingsAction.MODEL, code),
        lambda text, name: _settings_button(text, SettingsAction.MODEL_GROUP, name),
    )
    rows.append([_settings_button(t(lang, "btn.back"), SettingsAction.BACK)])
    return InlineKeyboardMarkup(rows)


def balance_text(lang: str, lines: list[tuple[str, str | None, str | None]]) -> str:
    """/balance: (backend, balance, error) per backend."""
    out = [t(lang, "balance.title")]
    # Provider text is theirs to make as long (or as full of < & >) as they like.
    share = min(BALANCE_DETAIL, (MESSAGE_LIMIT - 100) // max(1, len(lines)) - 60)
    for backend, text, error in lines:
        name = html.escape(excerpt(backend, 40))
        if error is None:
            detail = html.escape(excerpt(text or "", share))
            out.append(t(lang, "balance.line", backend=name, text=detail))
        else:
            detail = html.escape(excerpt(error, share))
            out.append(t(lang, "balance.error", backend=name, error=detail))
    return "\n".join(out)


def _counts(lang: str, counts: dict[str, int]) -> str:
    if not counts:
        return t(lang, "stats.none")
    return ", ".join(f"{html.escape(key)} {value}" for key, value in counts.items())


def stats_text(
    lang: str,
    stats: Stats,
    catalogue: Catalogue,
    task_timeout: float,
    undelivered: Sequence[Task] = (),
) -> str:
    """/stats: tasks by state, model and day, the latest failures, and videos not yet sent."""
    states = {t(lang, f"state.{TaskState(k).value}"): v for k, v in stats.by_state.items()}
    models = {catalogue.label(k): v for k, v in stats.by_model.items()}
    lines = [
        t(lang, "stats.title"),
        "",
        t(lang, "stats.by_state", items=_counts(lang, states)),
        t(lang, "stats.by_model", items=_counts(lang, models)),
        t(lang, "stats.by_day", items=_counts(lang, stats.by_day)),
        "",
        t(lang, "stats.failures"),
    ]
    now = time.time()
    for task in stats.recent_failures:
        reason = reason_text(task.model_copy(update={"lang": lang}), task_timeout, True)
        lines.append(
            t(
                lang,
                "stats.failure",
                id=task.id,
                model=html.escape(catalogue.label(task.options.model)),
                age=age(lang, now - (task.finished_at or task.created_at)),
                reason=reason,
            )
        )
    if not stats.recent_failures:
        lines.append(t(lang, "stats.none"))
    if undelivered:
        lines += ["", t(lang, "stats.undelivered")]
        for task in undelivered:
            model = html.escape(catalogue.label(task.options.model))
            since = age(lang, now - task.updated_at)
            lines.append(t(lang, "stats.undelivered_item", id=task.id, model=model, age=since))
    return "\n".join(lines)
