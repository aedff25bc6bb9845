"""/status: the user's tasks, newest first, a page at a time, with refresh and again buttons."""

from __future__ import annotations

import html
import math
import time
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import TaskAction, TaskButton, page_button
from bot.chat.texts import t
from bot.chat.views.parts import age, excerpt, sound_mark
from bot.chat.views.status import WAITING, eta
from bot.engine.timing import RunTimes
from bot.providers.catalogue import Catalogue
from storage.models import Task, TaskState

PAGE_SIZE = 5
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


def pages(total: int) -> int:
    """How many /status pages `total` tasks fill (at least one)."""
    return max(1, math.ceil(total / PAGE_SIZE))


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
                sound=sound_mark(lang, spec, task.options),
                age=age(lang, now - task.created_at),
                prompt=html.escape(excerpt(task.prompt, LIST_PROMPT_PREVIEW)),
            )
        )
        if times is not None and task.state in WAITING and task.submitted_at is not None:
            lines.append("    " + eta(lang, times(task), now - task.submitted_at))
    return "\n".join(lines)


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
