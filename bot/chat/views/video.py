"""The delivered video's caption and buttons, and the notices that send its link instead."""

from __future__ import annotations

import html

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import TaskAction, TaskButton
from bot.chat.texts import t
from bot.chat.views.parts import excerpt, sound_mark
from bot.engine.reporting import LinkReason
from bot.providers.catalogue import Catalogue
from storage.models import Task

_LINK_TEXTS = {
    LinkReason.TOO_BIG: "video.too_big",
    LinkReason.UNSENT: "video.link",
    LinkReason.RESENT: "video.resent_link",
}


def video_caption(task: Task, catalogue: Catalogue) -> str:
    """The delivered video's caption (≤ 1024 characters)."""
    spec = catalogue.get(task.options.model)
    return t(
        task.lang,
        "video.caption",
        prompt=html.escape(excerpt(task.prompt, 700)),
        model=html.escape(catalogue.label(task.options.model)),
        duration=task.options.duration,
        sound=sound_mark(task.lang, spec, task.options),
    )


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


def link_texts(
    task: Task, reason: LinkReason, url: str, size_mb: int, brief: bool = False
) -> tuple[str, str]:
    """The notice with the video's link instead of the video, as HTML and as plain text
    (`brief`: a link that works 20 minutes, not the result's own)."""
    if not url.startswith(("http://", "https://")):  # a local file is no use to the user
        unavailable = t(task.lang, "video.unavailable", id=task.id)
        return unavailable, unavailable
    key = _LINK_TEXTS[reason] + ("_brief" if brief else "")
    values = {"id": task.id, "size": size_mb}
    # The provider's URL may hold & < >: escaped for HTML, as it is in plain text.
    return t(task.lang, key, url=html.escape(url), **values), t(task.lang, key, url=url, **values)
