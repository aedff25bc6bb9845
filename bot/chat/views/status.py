"""The status message a draft turns into: the task's state, time left, why it failed, Retry."""

from __future__ import annotations

import html
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import TaskAction, TaskButton
from bot.chat.texts import t
from bot.chat.views.parts import excerpt, sound_mark
from bot.core.failures import Failure
from bot.core.images import LONGEST, SMALLEST
from bot.engine.timing import RunTimes, remaining
from bot.providers.catalogue import Catalogue
from storage.models import Task, TaskState

# How much of the prompt the status message repeats.
SUMMARY_PROMPT = 300
# The states whose message says how long is left.
WAITING = (TaskState.QUEUED, TaskState.RUNNING)
# Below this many seconds left, the video is "any moment" away.
SOON = 10.0


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
    if times is not None and task.state in WAITING and task.submitted_at is not None:
        head += "\n" + eta(lang, times, time.time() - task.submitted_at)
    return f"{head}\n\n{summary(task, catalogue, SUMMARY_PROMPT)}"


def waiting_text(task: Task, catalogue: Catalogue, ahead: int) -> str:
    """The status message of a task waiting in the local queue for the backend's limit."""
    backend = catalogue.title(task.backend)
    head = t(task.lang, "status.waiting", id=task.id, backend=backend, ahead=ahead)
    return f"{head}\n\n{summary(task, catalogue, SUMMARY_PROMPT)}"


def adopted_text(task: Task) -> str:
    """That a task we could not tell had started did start after all."""
    if task.retried_as is not None:  # the user paid for another try meanwhile
        return t(task.lang, "status.adopted_retried", id=task.id, retry=task.retried_as)
    return t(task.lang, "status.adopted", id=task.id)


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


def elapsed(lang: str, seconds: float) -> str:
    """A duration in whole minutes, like "2 min": a progress line that changes calmly."""
    minutes = max(0, int(seconds)) // 60
    if minutes:
        return t(lang, "elapsed.minutes", m=minutes)
    return t(lang, "elapsed.under_a_minute")


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
        sound=sound_mark(task.lang, spec, task.options),
        prompt=html.escape(excerpt(task.prompt, prompt_limit)),
    )
