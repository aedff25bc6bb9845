"""The camera menu of a draft: the moves its model takes, no move, and Back."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup

from bot.chat.callback_data import Action
from bot.chat.texts import t
from bot.chat.views.draft import draft_button
from bot.drafts.options import offer
from bot.providers.camera import CODES as CAMERA_CODES
from bot.providers.catalogue import ModelSpec
from storage.models import Draft


def camera_menu(draft: Draft, spec: ModelSpec) -> InlineKeyboardMarkup:
    """The camera moves the model takes two by two, no move, and Back."""
    button = draft_button(draft)
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
