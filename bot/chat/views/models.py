"""The model picker: a tab per backend, then its models; the draft's, and the one /settings uses."""

from __future__ import annotations

import re
from collections.abc import Callable

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.chat.callback_data import Action
from bot.chat.texts import t
from bot.chat.views.draft import draft_button
from bot.providers.catalogue import Catalogue, ModelSpec
from storage.models import Draft


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
    button = draft_button(draft)
    rows = model_rows(
        catalogue,
        draft.options.model,
        group,
        lambda text, code: button(text, Action.MODEL, code),
        lambda text, name: button(text, Action.MODEL_GROUP, name),
    )
    rows.append([button(t(draft.lang, "btn.back"), Action.BACK)])
    return InlineKeyboardMarkup(rows)
